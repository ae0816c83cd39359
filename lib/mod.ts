/**
 * crecipe: build container root filesystems, layers, images and initrds from small
 * recipes. This is the one public import.
 *
 * ```ts
 * import { $, build, file, here } from "crecipe";
 * export const hello = file("hello", async (out) => { await $`cc -o ${out} ${here("hello.c")}`; });
 * export default hello;
 * ```
 */
export { $ } from "./runtime.ts";
export { build, type BuildOptions } from "./engine/build.ts";
export { currentContext } from "./engine/context.ts";
export type { BuildContext, Node, Result, TargetOptions } from "./engine/types.ts";
export { BuildError, CrecipeError, CycleError } from "./engine/errors.ts";
export { declared, isNode, lookup, target } from "./engine/node.ts";
export { file, here, value } from "./targets/basic.ts";
export { fs_ as fs } from "./targets/fs.ts";
export { files, list } from "./targets/list.ts";
export { layer, type LayerValue, sourceDateEpoch } from "./targets/layer.ts";
export { image, imageTar, type ImageValue } from "./targets/image.ts";
export { type ImageConfig } from "./formats/oci.ts";
export { gz, sha256, zstd } from "./targets/digest.ts";
export { load, run, type RuntimeProblem, runtimeProblem } from "./run/mod.ts";
export { bundle, type BundleOptions, type BundleValue } from "./targets/bundle.ts";
export { initrd } from "./targets/initrd.ts";
export { memoryFor } from "./run/kvm.ts";
export { Root } from "./tree/root.ts";
export type { TreeMeta } from "./tree/meta.ts";
export { bootstrap, type BootstrapOptions, hostMirror } from "./debian/bootstrap.ts";
