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
import { sha256 } from "./digest.ts";
import { sourceDateEpoch } from "./layer.ts";

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
  const layerDigests = layers.map((l) => sha256(l));
  return target(`${name}.image`, async (ctx) => {
    const paths = await ctx.needAll(layers);
    const digests = await Promise.all(layerDigests.map(async (d) => (await ctx.result(d)).value));
    const refs: LayerRef[] = layers.map((l, i) => ({ digest: digests[i], size: fs.statSync(paths[i]).size, createdBy: `crecipe ${l.name}` }));
    const meta = imageMetadata(name, refs, config, created);
    const files = new Map<string, { data?: Buffer; path?: string; size: number }>();
    files.set(`blobs/sha256/${meta.config.digest}`, { data: meta.config.bytes, size: meta.config.bytes.length });
    files.set(`blobs/sha256/${meta.manifest.digest}`, { data: meta.manifest.bytes, size: meta.manifest.bytes.length });
    refs.forEach((r, i) => files.set(`blobs/sha256/${r.digest}`, { path: paths[i], size: r.size }));
    files.set("index.json", { data: meta.index, size: meta.index.length });
    files.set("manifest.json", { data: meta.dockerManifest, size: meta.dockerManifest.length });
    files.set("oci-layout", { data: meta.ociLayout, size: meta.ociLayout.length });
    const fd = fs.openSync(ctx.out, "w");
    try {
      const header = (path: string, type: "dir" | "file", size = 0) => {
        const entry: Entry = { path: Buffer.from(path), type, mode: type === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, size };
        fs.writeSync(fd, tarHeader(entry, created));
      };
      header("blobs", "dir");
      header("blobs/sha256", "dir");
      for (const [path, file] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        header(path, "file", file.size);
        if (file.data) fs.writeSync(fd, file.data);
        else copyInto(fd, file.path!);
        fs.writeSync(fd, tarPadding(file.size));
      }
      fs.writeSync(fd, tarEnd());
    } finally {
      fs.closeSync(fd);
    }
    return { id: `sha256:${meta.config.digest}`, manifest: `sha256:${meta.manifest.digest}`, tag: meta.tag };
  }, { kind: "image", options: { layers, config, created } });
}

function copyInto(fd: number, path: string): void {
  const input = fs.openSync(path, "r");
  const chunk = Buffer.allocUnsafe(1 << 20);
  try {
    for (let n; (n = fs.readSync(input, chunk, 0, chunk.length, null)) > 0;) fs.writeSync(fd, chunk, 0, n);
  } finally {
    fs.closeSync(input);
  }
}
