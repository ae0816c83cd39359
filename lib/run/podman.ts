/**
 * run.podman(image): the image run by podman, through its OCI layout: `podman load -i
 * out/NAME.image` (once: podman's image ID is the config digest, looked for first), then
 * `podman run --rm --network=none ID`. The container's writes go to its own layer, thrown
 * away with it; `readOnly` adds --read-only. Output and failures as run.runc: a container
 * that did not start (podman's exit codes 125–127) is explained by the probe when podman
 * cannot run anything here. `runtime` picks podman's OCI runtime (--runtime runc).
 */
import * as fs from "node:fs";
import { CommandError, CrecipeError } from "../engine/errors.ts";
import { type Node, resolveTarget, target } from "../engine/node.ts";
import { requireTool } from "../host.ts";
import { $ } from "../runtime.ts";
import type { ImageValue } from "../targets/image.ts";
import { runtimeMessage } from "./container.ts";
import { fixFor, runtimeProblem } from "./probe.ts";
import type { ContainerRunOptions } from "./runc.ts";

/** run.podman's options: those of every container run, and podman's own runtime. */
export interface PodmanOptions extends ContainerRunOptions {
  /** podman's OCI runtime (default: podman's own choice, usually crun). */
  runtime?: string;
}

/**
 * The image run by podman.
 *
 * ```ts
 * export const inPodman = run.podman(simpleImage, { runtime: "runc" });
 * ```
 */
export function podman(target_: Node<ImageValue> | string, options: PodmanOptions = {}): Node {
  const image = resolveTarget(target_);
  const readOnly = Boolean(options.readOnly);
  const name = options.name ?? `${image.name.replace(/\.image$/, "")}.runpodman`;
  const settings = { image, readOnly, command: options.command ?? null, runtime: options.runtime ?? null };
  return target(name, async (ctx) => {
    const built = await ctx.result(image);
    const bin = await requireTool("podman", ctx.name);
    const id = built.value.id.replace(/^sha256:/, "");
    if ((await $({ nothrow: true })`${bin} image exists ${id}`).exitCode !== 0) {
      const load = await $({ nothrow: true })`${bin} load -q -i ${built.path}`;
      if (load.exitCode !== 0) throw new CrecipeError(`podman load of ${built.path} failed: ${runtimeMessage(load.stderr)}`, { target: ctx.name, fix: "see the log" });
    }
    const global = options.runtime ? ["--runtime", options.runtime] : [];
    const flags = ["--rm", "--network=none", ...(readOnly ? ["--read-only"] : []), ...(options.command ? [`--entrypoint=${JSON.stringify(options.command)}`] : [])];
    const result = await $({ nothrow: true })`${bin} ${global} run ${flags} ${id}`;
    const exitCode = result.exitCode ?? 1;
    if (exitCode === 0) return void fs.writeFileSync(ctx.out, result.stdout);
    if (exitCode >= 125 && exitCode <= 127) {
      const problem = options.runtime ? undefined : await runtimeProblem("podman");
      if (problem) throw new CrecipeError(`podman cannot run containers here: ${problem.why}`, { target: ctx.name, fix: problem.fix });
      const why = runtimeMessage(result.stderr) || `exit code ${exitCode}`;
      throw new CrecipeError(`podman could not run ${image.name}: ${why}`, { target: ctx.name, fix: fixFor("podman", why) });
    }
    throw new CommandError(exitCode);
  }, { kind: "runpodman", options: settings, derived: options.name === undefined });
}
