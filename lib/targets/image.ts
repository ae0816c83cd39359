/**
 * image(name, layers, config): one tar that `docker load` reads (manifest.json) and that
 * is an OCI image layout too (oci-layout, index.json, blobs/sha256/…) for skopeo, podman
 * and umoci. Layers are listed base first; diff_ids are over the uncompressed tars, so
 * the image ID is a function of the content: two clean builds give the same bytes.
 */
import * as fs from "node:fs";
import { type Node, target } from "../engine/node.ts";
import { type Entry } from "../formats/entry.ts";
import { type ImageConfig, imageMetadata, type LayerRef } from "../formats/oci.ts";
import { tarEnd, tarHeader, tarPadding } from "../formats/tar.ts";
import { hashFile } from "../engine/hash.ts";
import { ArchiveFile } from "./archive.ts";
import { type LayerValue, sourceDateEpoch } from "./layer.ts";

export interface ImageValue {
  /** sha256:… of the config: Docker's image ID. */
  id: string;
  /** sha256:… of the OCI manifest. */
  manifest: string;
  tag: string;
}

/**
 * ```ts
 * export const simpleImage = image("simple", [layer("libs", "simple"), layer("simple")]);
 * ```
 */
export function image(name: string, layers: Node[], config: ImageConfig = {}): Node<ImageValue> {
  const created = sourceDateEpoch();
  return target(`${name}.image`, async (ctx) => {
    const built = await Promise.all(layers.map((l) => ctx.result(l)));
    const paths = built.map((b) => b.path!);
    const refs: LayerRef[] = built.map((b, i) => {
      const value = b.value as Partial<LayerValue> | null;
      // A layer() knows its digest; any other file target is hashed here.
      const digest = value?.digest ?? hashFile(paths[i]);
      return { digest, size: fs.statSync(paths[i]).size, createdBy: `crecipe ${layers[i].name}` };
    });
    const meta = imageMetadata(name, refs, config, created);
    const files = new Map<string, { data?: Buffer; path?: string; size: number }>();
    files.set(`blobs/sha256/${meta.config.digest}`, { data: meta.config.bytes, size: meta.config.bytes.length });
    files.set(`blobs/sha256/${meta.manifest.digest}`, { data: meta.manifest.bytes, size: meta.manifest.bytes.length });
    refs.forEach((r, i) => files.set(`blobs/sha256/${r.digest}`, { path: paths[i], size: r.size }));
    files.set("index.json", { data: meta.index, size: meta.index.length });
    files.set("manifest.json", { data: meta.dockerManifest, size: meta.dockerManifest.length });
    files.set("oci-layout", { data: meta.ociLayout, size: meta.ociLayout.length });
    const tar = new ArchiveFile(ctx.out);
    const header = (path: string, type: "dir" | "file", size = 0) => {
      const entry: Entry = { path: Buffer.from(path), type, mode: type === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, size };
      tar.write(tarHeader(entry, created));
    };
    try {
      header("blobs", "dir");
      header("blobs/sha256", "dir");
      for (const [path, file] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        header(path, "file", file.size);
        if (file.data) tar.write(file.data);
        else if (tar.copyFrom(file.path!) !== file.size) throw new Error(`${file.path} changed while packing the image`);
        tar.write(tarPadding(file.size));
      }
      tar.write(tarEnd());
    } catch (error) {
      tar.abandon();
      throw error;
    }
    ctx.trustOutputHash(tar.close());
    return { id: `sha256:${meta.config.digest}`, manifest: `sha256:${meta.manifest.digest}`, tag: meta.tag };
  }, { kind: "image", options: { layers, config, created } });
}
