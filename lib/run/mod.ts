/** Ways to run what was built: run.local (chroot), run.kvm (qemu), run.docker; load.docker. */
import type { Node } from "../engine/types.ts";
import type { ImageValue } from "../targets/image.ts";
import { loadDocker, runDocker } from "./docker.ts";
import { kvm, type KvmOptions } from "./kvm.ts";
import { local, type LocalOptions } from "./local.ts";

export type { KvmOptions, LocalOptions };

/** The run targets: each keeps what the program printed as its output. */
export interface Runners {
  /** NAME.runlocal: `unshare -r chroot` into the tree, on a throw-away overlay (the tree is never changed). */
  local(tree: Node | string, options?: LocalOptions): Node;
  /** NAME.runkvm: a qemu VM booting the tree as an initrd (KVM when it works, else TCG). */
  kvm(tree: Node | string, options?: KvmOptions): Node;
  /** NAME.rundocker: `docker run --rm` of the image, loaded first (only new layers are sent). */
  docker(image: Node<ImageValue>, args?: string[]): Node;
}

/** The load targets. */
export interface Loaders {
  /** NAME.load: the image loaded into Docker; its value is the ID Docker knows it by. */
  docker(image: Node<ImageValue>): Node<string>;
}

/**
 * Targets that run what was built and keep what it printed: `run.local(fs)` (a chroot on a
 * throw-away overlay: NAME.runlocal), `run.kvm(fs)` (a qemu VM booting the tree as an
 * initrd: NAME.runkvm), `run.docker(image)` (NAME.rundocker). A failing program fails
 * the target with its exit code.
 *
 * ```ts
 * export default [run.local(libs), run.kvm(libs), run.docker(simpleImage)];
 * ```
 */
export const run: Runners = { local, kvm, docker: runDocker };

/**
 * Targets that load an image somewhere: `load.docker(image)` (NAME.load, whose value is
 * the ID Docker knows it by; only layers the daemon lacks are sent).
 *
 * ```ts
 * export const loaded = load.docker(simpleImage);
 * ```
 */
export const load: Loaders = { docker: loadDocker };
