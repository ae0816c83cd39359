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
export { type BuildContext, currentContext, type Result } from "./engine/context.ts";
export { BuildError, CrecipeError, CycleError } from "./engine/errors.ts";
export { declared, isNode, lookup, type Node, target, type TargetOptions } from "./engine/node.ts";
export { file, here, value } from "./targets/basic.ts";
export { fs_ as fs } from "./targets/fs.ts";
export { files, list } from "./targets/list.ts";
export { layer, sourceDateEpoch } from "./targets/layer.ts";
export { image, type ImageValue } from "./targets/image.ts";
export { type ImageConfig } from "./formats/oci.ts";
export { gz, sha256 } from "./targets/digest.ts";
export { load, run } from "./run/mod.ts";
export { initrd } from "./targets/initrd.ts";
export { memoryFor } from "./run/kvm.ts";
export { Root } from "./tree/root.ts";
export { bootstrap, type BootstrapOptions, hostMirror } from "./debian/bootstrap.ts";
