/**
 * run.runc(bundle) and run.crun(bundle): the bundle's program run by an OCI runtime,
 * rootless for an ordinary user (`runc --root DIR`, config.json mapping root to the
 * user), as root otherwise. stdout is the target's output, stderr goes to its log, a
 * non-zero exit fails the target with its code. An image or an fs is made a bundle
 * first. The bundle is never written to (container.ts): a run is thrown away, or with
 * `readOnly` its root is read-only.
 *
 * A container that did not start is explained in one line: the runtime cannot work on
 * this host (probe.ts says why and what to do), or this bundle is wrong (the runtime's
 * own message).
 */
import * as fs from "node:fs";
import { CommandError, CrecipeError } from "../engine/errors.ts";
import { type Node, target } from "../engine/node.ts";
import { bundle, type BundleValue } from "../targets/bundle.ts";
import { type BundleRuntime, launch, RUNTIME_TOOLS, runtimeMessage } from "./container.ts";
import { runtimeProblem } from "./probe.ts";

/** How run.runc, run.crun, run.nspawn and run.podman run: read-only, another command, another name. */
export interface ContainerRunOptions {
  /** The root file system read-only: writes fail inside (default: writable, thrown away). */
  readOnly?: boolean;
  /** The program and its arguments (default: the bundle's). */
  command?: string[];
  /** The target's name (default NAME.runRUNTIME, NAME being the bundle's without .bundle). */
  name?: string;
}

/** The bundle of `source`: itself when it is one, else bundle(source). */
export function asBundle(source: Node | string): Node<BundleValue> {
  return typeof source !== "string" && source.kind === "bundle" ? (source as Node<BundleValue>) : bundle(source);
}

/** A run target for `runtime` (runc, crun, nspawn). */
export function bundleRunner(runtime: BundleRuntime) {
  return (source: Node | string, options: ContainerRunOptions = {}): Node => {
    const bundleNode = asBundle(source);
    const readOnly = Boolean(options.readOnly);
    const command = options.command;
    const name = options.name ?? `${bundleNode.name.replace(/\.bundle$/, "")}.run${runtime}`;
    return target(name, async (ctx) => {
      const built = await ctx.result(bundleNode);
      if (runtime === "nspawn" && process.getuid?.() !== 0) {
        throw new CrecipeError("systemd-nspawn runs containers as root only", { target: ctx.name, fix: "run crecipe as root, or use run.runc (rootless)" });
      }
      if (built.value.rootless !== (process.getuid?.() !== 0) || (built.value.rootless && built.value.uid !== process.getuid?.())) {
        throw new CrecipeError(`${bundleNode.name} was built for ${built.value.rootless ? `uid ${built.value.uid}` : "root"}; its config.json maps ids for that user`, {
          target: ctx.name,
          fix: `rebuild it as this user (crecipe rebuilds it when its out dir is this user's)`,
        });
      }
      const how = `${built.value.rootless ? "rootless" : "as root"}, ${readOnly ? "read-only root" : "over a throw-away overlay"}`;
      ctx.noteCommand(`${RUNTIME_TOOLS[runtime]} run ${built.path} (${how})`);
      const result = await launch(runtime, built.path!, { readOnly, command });
      if (result.exitCode === 0) return void fs.writeFileSync(ctx.out, result.stdout);
      if (result.started !== true) {
        const problem = await runtimeProblem(runtime);
        if (problem) throw new CrecipeError(`${RUNTIME_TOOLS[runtime]} cannot run containers here: ${problem.why}`, { target: ctx.name, fix: problem.fix });
        if (result.started === false) {
          throw new CrecipeError(`${RUNTIME_TOOLS[runtime]} could not start ${bundleNode.name}: ${runtimeMessage(result.stderr) || `exit code ${result.exitCode}`}`, {
            target: ctx.name,
            fix: "the bundle needs the program it runs (and its libraries: root.addSharedLibraries())",
          });
        }
      }
      throw new CommandError(result.exitCode);
    }, { kind: `run${runtime}`, options: { bundle: bundleNode, readOnly, command: command ?? null }, derived: options.name === undefined });
  };
}

/**
 * The bundle's program run by runc (rootless for an ordinary user).
 *
 * ```ts
 * export default run.runc(simpleImage);   // out/simple.runrunc: what /init printed
 * ```
 */
export const runc = bundleRunner("runc");

/** The bundle's program run by crun (the runtime podman uses); as run.runc. */
export const crun = bundleRunner("crun");
