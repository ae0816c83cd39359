/**
 * crecipe: build container root filesystems, layers, images and initrds from small
 * recipes, and run them in a chroot, a VM or Docker. This is the recipe author's API: a
 * recipe declares targets with these helpers and exports them; declaring builds nothing,
 * `crecipe RECIPE.ts` (or `build()`) builds what is out of date.
 *
 * ```ts
 * import { $, file, fs, here, image, layer, run } from "crecipe";
 * export const hello = file("hello", async (out) => { await $`cc -o ${out} ${here("hello.c")}`; });
 * export const simple = fs("simple", async (root) => {
 *   await root.copyIn([hello, "/bin/sh"], "/bin/");
 *   await root.symlink("bin/hello", "/init");
 * });
 * export default [run.local(simple), image("simple", [layer(simple)])];
 * ```
 *
 * Tools that look at builds rather than declare them use `crecipe/inspect` (lib/inspect.ts).
 *
 * @module
 */
export { $, type Shell } from "./runtime.ts";
export { build, type BuildOptions } from "./engine/build.ts";
export type { BuildEvent, CriticalPath, EventBase, EventSink, FailureFields } from "./engine/events.ts";
export { type BuildContext, type Builder, NODE, type Node, type Result, type TargetOptions } from "./engine/types.ts";
export { type SourceRef } from "./engine/sources.ts";
export { BuildError, CrecipeError, CycleError } from "./engine/errors.ts";
export { target } from "./engine/node.ts";
export { file, here, value } from "./targets/basic.ts";
export { fs_ as fs, type FsBuilder } from "./targets/fs.ts";
export { files, list } from "./targets/list.ts";
export { layer, type LayerValue } from "./targets/layer.ts";
export { image, imageTar, type ImageValue } from "./targets/image.ts";
export { type ImageConfig } from "./formats/oci.ts";
export { gz, sha256, zstd } from "./targets/digest.ts";
export {
  type BundleRuntime,
  type ContainerRunOptions,
  type KvmOptions,
  load,
  type Loaders,
  type LocalOptions,
  type PodmanOptions,
  run,
  type Runners,
  type Runtime,
  type RuntimeProblem,
  runtimeProblem,
} from "./run/mod.ts";
export { bundle, type BundleOptions, type BundleValue } from "./targets/bundle.ts";
export { initrd, type InitrdOptions } from "./targets/initrd.ts";
export type { Root, Source } from "./tree/root.ts";
export type { RunOptions } from "./tree/run.ts";
export type { Device, TreeMeta } from "./tree/meta.ts";
export { bootstrap, type BootstrapOptions } from "./debian/bootstrap.ts";
export { type InstalledPackage, type PackageLayer, packageLayers, type PackageLayersValue } from "./debian/packages.ts";
export { attach, sbom } from "./debian/sbom.ts";
export { chunks, type ChunksValue } from "./targets/chunks.ts";
export { serve, type ServeOptions, type Serving } from "./net/serve.ts";
export { push, type PushOptions, type PushValue } from "./net/registry/push.ts";
export { pull, type PullOptions, type PullValue } from "./net/registry/pull.ts";
export { type CacheOptions, RegistryCache } from "./net/cache.ts";
export type { CachedDep, Candidate, Fetched, RemoteCache, StoreEntry, Upstream } from "./engine/remote.ts";
export { fetchChunked, FetchError, type FetchOptions, type FetchProgress, type FetchReport } from "./net/fetch.ts";
