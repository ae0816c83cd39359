/**
 * image(name, layers, config): an image as a directory (out/NAME.image/) that is both an
 * OCI image layout (oci-layout, index.json, blobs/sha256/…) for skopeo, podman and umoci,
 * and Docker's archive format (manifest.json) once packed. Layer blobs are hard links to
 * the layer outputs, so an image costs its metadata, not its layers' bytes: after a small
 * change only the changed layer is new. A single file is made only where one is wanted:
 * imageTar(image) (out/NAME.image.tar), gz(image), and the stream load.docker sends.
 * Diff_ids are over the uncompressed tars, so the image ID is a function of the content.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { hashFile } from "../engine/hash.ts";
import { linkBlob } from "../engine/io.ts";
import { type Node, resolveTarget, target } from "../engine/node.ts";
import type { Entry } from "../formats/entry.ts";
import { CrecipeError } from "../engine/errors.ts";
import { type ImageConfig, imageMetadata, type LayerRef, parseReference } from "../formats/oci.ts";
import { type LayerValue, sourceDateEpoch } from "./layer.ts";
import { type TarItem, writeTarFile } from "./tarball.ts";

/** What an image target's value says: the digests a registry or a runtime knows it by. */
export interface ImageValue {
  /** sha256:… of the config: Docker's image ID. */
  id: string;
  /** sha256:… of the OCI manifest. */
  manifest: string;
  /** The reference Docker and OCI tools see (name:tag). */
  tag: string;
  /** The layers' digests (sha256 hex), base first: their diff_ids and blob names. */
  layers: string[];
  /** SOURCE_DATE_EPOCH of the image: the mtime of every entry of its tar. */
  created: number;
}

/**
 * An image of `layers` (base first). An image among them (`pull(…)`, another `image(…)`)
 * brings all of its layers, as does a set of layers (`packageLayers(…)`).
 *
 * ```ts
 * export const simpleImage = image("simple", [layer("libs", "simple"), layer("simple")]);
 * ```
 */
export function image(name: string, layerTargets: (Node | string)[], config: ImageConfig = {}): Node<ImageValue> {
  const created = sourceDateEpoch();
  if (!Array.isArray(layerTargets) || layerTargets.length === 0) {
    throw new CrecipeError(`image("${name}") has no layers: an image needs at least one`, { fix: `image("${name}", [layer(someFs)])` });
  }
  if (config.tag !== undefined) {
    try {
      parseReference(config.tag);
    } catch (error) {
      throw new CrecipeError(`image("${name}"): ${(error as Error).message}`, { fix: "a tag like registry.example:5000/team/app:1.2 (lower case)" });
    }
  }
  const layers = layerTargets.map((l) => resolveTarget(l));
  return target(`${name}.image`, async (ctx) => {
    const results = await Promise.all(layers.map((l) => ctx.result(l)));
    // An image among the layers (a pull(), another image()) or a layer set (packageLayers())
    // stands for all of its layers, base first.
    const built: { path: string; value: unknown; name: string }[] = results.flatMap((b, i) => {
      const base = b.value as Partial<ImageValue> | null;
      if (!Array.isArray(base?.layers) || !fs.statSync(b.path!).isDirectory()) return [{ path: b.path!, value: b.value, name: layers[i].name }];
      return base.layers.map((digest) => ({ path: path.join(b.path!, "blobs", "sha256", digest), value: { digest }, name: layers[i].name }));
    });
    const refs: LayerRef[] = built.map((b) => {
      const value = b.value as Partial<LayerValue> | null;
      // A layer() knows its digest; any other file target is hashed here.
      const digest = value?.digest ?? hashFile(b.path);
      return { digest, size: fs.statSync(b.path).size, createdBy: `crecipe ${b.name}` };
    });
    const meta = imageMetadata(name, refs, config, created);
    const blobs = path.join(ctx.out, "blobs", "sha256");
    fs.mkdirSync(blobs, { recursive: true });
    const put = (file: string, data: Buffer) => fs.writeFileSync(path.join(ctx.out, file), data, { mode: 0o644 });
    put("oci-layout", meta.ociLayout);
    put("index.json", meta.index);
    put("manifest.json", meta.dockerManifest);
    put(`blobs/sha256/${meta.config.digest}`, meta.config.bytes);
    put(`blobs/sha256/${meta.manifest.digest}`, meta.manifest.bytes);
    refs.forEach((ref, i) => {
      const blob = path.join(blobs, ref.digest);
      linkBlob(built[i].path, blob); // there already if it is the same layer twice
    });
    ctx.trustOutputHash(`image:${meta.manifest.digest}`);
    return {
      id: `sha256:${meta.config.digest}`,
      manifest: `sha256:${meta.manifest.digest}`,
      tag: meta.tag,
      layers: refs.map((r) => r.digest),
      created,
    };
  }, { kind: "image", shared: true, signsFiles: true, options: { layers, config, created } });
}

/**
 * The files of an image directory as one tar holds them (Docker's archive and an OCI
 * layout at once), in a fixed order. `omit`: layer digests to leave out (load.docker
 * leaves out what the daemon already has).
 */
export function imageItems(dir: string, omit: ReadonlySet<string> = new Set()): TarItem[] {
  const entry = (name: string, type: "dir" | "file", size = 0): Entry => ({ path: Buffer.from(name), type, mode: type === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, size });
  const files: string[] = ["index.json", "manifest.json", "oci-layout"];
  for (const blob of fs.readdirSync(path.join(dir, "blobs", "sha256"))) {
    if (!omit.has(blob)) files.push(`blobs/sha256/${blob}`);
  }
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [
    { entry: entry("blobs", "dir") },
    { entry: entry("blobs/sha256", "dir") },
    ...files.map((file) => {
      const host = path.join(dir, file);
      return { entry: entry(file, "file", fs.statSync(host).size), host };
    }),
  ];
}

/** The bytes of the files imageItems() lists: about the size of the image's tar (what decides threads). */
export function itemsSize(items: TarItem[]): number {
  return items.reduce((n, i) => n + i.entry.size, 0);
}

/**
 * NAME.image.tar: the image as one file, what `docker load -i`, `skopeo copy
 * oci-archive:` and `podman load` read.
 */
export function imageTar(target_: Node<ImageValue> | string): Node<ImageValue> {
  const img = resolveTarget(target_);
  return target(`${img.name}.tar`, async (ctx) => {
    const built = await ctx.result(img);
    const items = imageItems(built.path!);
    const { digest } = await writeTarFile(ctx.out, items, itemsSize(items), built.value.created, ctx.name);
    ctx.trustOutputHash(digest);
    return built.value;
  }, { kind: "imagetar", shared: true, options: { image: img }, derived: true });
}
