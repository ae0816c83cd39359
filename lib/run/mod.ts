/** Ways to run what was built: run.local (chroot), run.kvm (qemu), run.docker; run.runc, run.crun, run.nspawn (OCI bundles), run.podman; load.docker. */
import type { Node } from "../engine/types.ts";
import type { ImageValue } from "../targets/image.ts";
import { loadDocker, runDocker } from "./docker.ts";
import { kvm, type KvmOptions } from "./kvm.ts";
import { local, type LocalOptions } from "./local.ts";
import { nspawn } from "./nspawn.ts";
import { podman, type PodmanOptions } from "./podman.ts";
import { type ContainerRunOptions, crun, runc } from "./runc.ts";

export type { ContainerRunOptions, KvmOptions, LocalOptions, PodmanOptions };
export { type Runtime, type RuntimeProblem, runtimeProblem } from "./probe.ts";
export type { BundleRuntime } from "./container.ts";

/** The run targets: each keeps what the program printed as its output. */
export interface Runners {
  /** NAME.runlocal: `unshare -r chroot` into the tree, on a throw-away overlay (the tree is never changed). */
  local(tree: Node | string, options?: LocalOptions): Node;
  /** NAME.runkvm: a qemu VM booting the tree as an initrd (KVM when it works, else TCG). */
  kvm(tree: Node | string, options?: KvmOptions): Node;
  /** NAME.rundocker: `docker run --rm` of the image, loaded first (only new layers are sent); `readOnly` adds --read-only. */
  docker(image: Node<ImageValue> | string, args?: string[], options?: { readOnly?: boolean }): Node;
  /** NAME.runrunc: the bundle (an image or fs is made one) run by runc, rootless for an ordinary user. */
  runc(source: Node | string, options?: ContainerRunOptions): Node;
  /** NAME.runcrun: as runc, with crun. */
  crun(source: Node | string, options?: ContainerRunOptions): Node;
  /** NAME.runnspawn: the bundle run by systemd-nspawn --oci-bundle, as root only. */
  nspawn(source: Node | string, options?: ContainerRunOptions): Node;
  /** NAME.runpodman: the image loaded into podman through its OCI layout and run. */
  podman(image: Node<ImageValue> | string, options?: PodmanOptions): Node;
}

/** The load targets. */
export interface Loaders {
  /** NAME.load: the image loaded into Docker; its value is the ID Docker knows it by. */
  docker(image: Node<ImageValue> | string): Node<string>;
}

/**
 * Targets that run what was built and keep what it printed: `run.local(fs)` (a chroot on a
 * throw-away overlay: NAME.runlocal), `run.kvm(fs)` (a qemu VM booting the tree as an
 * initrd: NAME.runkvm), `run.docker(image)` (NAME.rundocker), `run.runc`/`run.crun`/
 * `run.nspawn` (an OCI bundle: NAME.runrunc…), `run.podman(image)`. A failing program
 * fails the target with its exit code; no run changes the tree it runs.
 *
 * ```ts
 * export default [run.local(libs), run.kvm(libs), run.docker(simpleImage)];
 * ```
 */
export const run: Runners = { local, kvm, docker: runDocker, runc, crun, nspawn, podman };

/**
 * Targets that load an image somewhere: `load.docker(image)` (NAME.load, whose value is
 * the ID Docker knows it by; only layers the daemon lacks are sent).
 *
 * ```ts
 * export const loaded = load.docker(simpleImage);
 * ```
 */
export const load: Loaders = { docker: loadDocker };
