/**
 * The one vendor boundary: third-party packages and Node/Deno differences enter here.
 * zx loads lazily (it alone costs ~200 ms), so a no-op build never pays.
 */
import { createRequire } from "node:module";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { currentContext } from "./engine/context.ts";

const require = createRequire(import.meta.url);

export const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

type Zx = typeof import("zx");
let zxModule: Zx | undefined;
/** zx, loaded on first use (its CommonJS build, so this can be synchronous). */
export function zx(): Zx {
  return (zxModule ??= require("zx") as Zx);
}

/**
 * node:child_process, loaded on first use (~10 ms: a no-op runs no process). Spawn from
 * here: `childProcess().spawn(…)`.
 */
export function childProcess(): typeof import("node:child_process") {
  return require("node:child_process");
}

/** node:zlib, loaded on first use. */
export function zlib(): typeof import("node:zlib") {
  return require("node:zlib");
}


/**
 * zx's options for the builder running now: commands and their output go to the
 * target's log (and `+ cmd` to the terminal with -v), children get their own process
 * group so Ctrl-C can kill them whole.
 */
function contextOptions(): Record<string, unknown> {
  const ctx = currentContext();
  if (!ctx) return {};
  const cp = require("node:child_process") as typeof import("node:child_process");
  return {
    verbose: false,
    quiet: true,
    detached: true, // its own process group: Ctrl-C kills the whole tree
    log(entry: { kind: string; cmd?: string; data?: Buffer }) {
      if (entry.kind === "cmd") ctx.noteCommand(entry.cmd!);
      else if (entry.kind === "stdout" || entry.kind === "stderr") ctx.log(entry.data!);
    },
    spawn(file: string, args: string[], options: SpawnOptions): ChildProcess {
      const child = cp.spawn(file, args, options);
      if (child.pid) {
        const untrack = ctx.trackChild(child.pid);
        child.once("exit", untrack);
      }
      return child;
    },
  };
}

/** zx's `$`: a tagged template that runs a command (see the zx documentation). */
export type Shell = typeof import("zx")["$"];
const isTemplate = (v: unknown): v is TemplateStringsArray => Array.isArray(v) && "raw" in (v as object);

function bound(extra: Record<string, unknown>): Shell {
  return new Proxy(function () {} as unknown as Shell, {
    apply(_target, _this, args: unknown[]) {
      const options = { ...contextOptions(), ...extra };
      if (isTemplate(args[0])) return (zx().$(options as never) as unknown as (...a: unknown[]) => unknown)(...args);
      return bound({ ...extra, ...(args[0] as Record<string, unknown>) });
    },
    get(_target, prop) {
      return Reflect.get(zx().$, prop);
    },
    set(_target, prop, value) {
      return Reflect.set(zx().$, prop, value);
    },
  });
}

/**
 * zx's `$`, aware of the target being built: inside a builder, commands are logged to
 * that target's log and killed on Ctrl-C. Loads zx on first use.
 *
 * ```ts
 * await $`cc -o ${ctx.out} ${here("hello.c")}`;
 * ```
 */
export const $: Shell = bound({});
