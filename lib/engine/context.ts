/**
 * What a builder gets (a BuildContext): where to write its output, and how to depend on
 * other targets and host files. Everything it reads through the context becomes a
 * dependency. The context of the builder running now is found through AsyncLocalStorage,
 * as zx's `within()` does, so helpers like `$` log to the right target.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import * as fs from "node:fs";
import * as path from "node:path";
import { CrecipeError } from "./errors.ts";
import { hostContentHash, hostSignature, sha256Hex, withXattrs } from "./hash.ts";
import { isNode, resolveTarget } from "./node.ts";
import type { Dep } from "./state.ts";
import type { BuildContext, Node, Result } from "./types.ts";

export type { BuildContext, Result };

const storage = new AsyncLocalStorage<BuildContext>();

/** The context of the builder running now, if any (helpers use it to log and to record deps). */
export function currentContext(): BuildContext | undefined {
  return storage.getStore();
}

export function runInContext<T>(ctx: BuildContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** What a context needs from the engine that runs the builder. */
export interface ContextHost {
  name: string;
  out: string;
  tmp: string;
  outDir: string;
  finalPath: string;
  signal: AbortSignal;
  verbose: boolean;
  logFd: number;
  /** Build a dependency (the engine releases the builder's job slot meanwhile). */
  ensure(dep: Node): Promise<Result>;
  onCommand(command: string): void;
  onWarning(message: string): void;
  trackChild(pid: number): () => void;
}

/** A builder's context plus what it recorded: its dependencies, its last command, a trusted output hash. */
export interface Recorded {
  ctx: BuildContext;
  deps: Map<string, Dep>;
  lastCommand(): string | undefined;
  trustedHash(): string | undefined;
}

/** need() hands back a path; a target that only returns a value has none, and "" would be misread. */
function pathOf(dep: Node, result: Result): string {
  if (result.path !== undefined && result.path !== null) return result.path;
  throw new CrecipeError(`${dep.name} has no output file, only a value: read it with (await ctx.result(${dep.name})).value`, {
    target: dep.name,
    fix: "ctx.need() is for targets that write a file or a tree; ctx.result() returns the result of any target, its value included",
  });
}

export function makeContext(host: ContextHost): Recorded {
  const deps = new Map<string, Dep>();
  let lastCommand: string | undefined;
  let trustedHash: string | undefined;
  const need = async (named: Node | string): Promise<Result> => {
    // A declared name stands for its target, as in every helper that takes one.
    const dep = typeof named === "string" ? resolveTarget(named) : named;
    if (!isNode(dep)) throw new CrecipeError(`${host.name}: need() takes a target or its name, got ${typeof dep}`, { target: host.name });
    const result = await host.ensure(dep);
    deps.set(`t:${dep.name}`, { target: dep.name, stamp: result.stamp });
    return result;
  };
  const ctx: BuildContext = {
    name: host.name,
    out: host.out,
    tmp: host.tmp,
    outDir: host.outDir,
    finalPath: host.finalPath,
    signal: host.signal,
    verbose: host.verbose,
    need: async (dep) => pathOf(resolveTarget(dep), await need(dep)),
    needAll: (list) => Promise.all(list.map(async (d) => pathOf(resolveTarget(d), await need(d)))),
    result: (dep) => need(dep) as never,
    dependOn(...paths) {
      for (const p of paths) {
        const abs = path.resolve(p);
        if (deps.has(`f:${abs}`)) continue;
        const { kind, sig } = hostSignature(abs);
        deps.set(`f:${abs}`, { file: abs, hash: kind === "missing" ? null : hostContentHash(abs) ?? null, sig });
      }
    },
    async read(p) {
      const abs = path.resolve(p);
      const { sig } = hostSignature(abs);
      const data = await fs.promises.readFile(abs);
      deps.set(`f:${abs}`, { file: abs, hash: withXattrs(abs, sha256Hex(data)), sig });
      return data;
    },
    log(...args) {
      const text = args.map((a) => (typeof a === "string" ? a : Buffer.isBuffer(a) ? a.toString() : JSON.stringify(a))).join(" ");
      fs.writeSync(host.logFd, text.endsWith("\n") ? text : text + "\n");
    },
    warn(message) {
      fs.writeSync(host.logFd, `warning: ${message}\n`);
      host.onWarning(message);
    },
    noteCommand(command) {
      lastCommand = command;
      fs.writeSync(host.logFd, `$ ${command}\n`);
      host.onCommand(command);
    },
    trustOutputHash(hash) {
      trustedHash = hash;
    },
    trackChild: host.trackChild,
  };
  return { ctx, deps, lastCommand: () => lastCommand, trustedHash: () => trustedHash };
}
