/**
 * push(image, "host[:port]/repo:tag"): the image in a registry. The output, out/NAME.push/,
 * is the OCI layout that was pushed: the image's config, its layers gzip-compressed
 * (--rsyncable, no name or time: the same bytes on every run) and a manifest naming the
 * compressed blobs, while the config's diff_ids stay the uncompressed tars' (so the image
 * ID is the one `image()` computed). A layer is compressed once: a later push reuses the
 * compressed blob of the previous output when the layer did not change.
 *
 * Why gzip and not the uncompressed tars the image holds: a registry is most often across
 * a network, where bytes cost more than a compression done once; every registry and
 * every runtime (Docker 20.10 included) takes tar+gzip, not all take uncompressed layers.
 *
 * Order: every blob first (HEAD: present, skipped; in another repository of the same
 * registry that crecipe pushed to or pulled from: mounted; else uploaded), the manifest
 * last. A push that dies half way leaves blobs no tag names, never a tag naming missing
 * blobs. A second push of the same image uploads nothing.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CrecipeError } from "../../engine/errors.ts";
import { hashFile, sha256Hex } from "../../engine/hash.ts";
import { linkBlob } from "../../engine/io.ts";
import { type Node, target } from "../../engine/node.ts";
import type { BuildContext } from "../../engine/types.ts";
import { MEDIA, parseRegistryReference, type RegistryReference } from "../../formats/oci.ts";
import { gzipFile } from "../../targets/digest.ts";
import type { ImageValue } from "../../targets/image.ts";
import { RegistryClient, type RegistryStats } from "./client.ts";

/** What a push target's value says. */
export interface PushValue {
  /** The reference pushed to, as given. */
  reference: string;
  /** host[:port] of the registry. */
  registry: string;
  /** The repository on it. */
  repository: string;
  /** sha256:… of the pushed manifest: `docker pull REPO@DIGEST` gets exactly this image. */
  digest: string;
  /** Blobs sent, on the run that pushed. */
  uploaded: number;
  /** Blobs the repository already had (a second push: all of them). */
  present: number;
  /** Blobs mounted from another repository of the same registry instead of sent. */
  mounted: number;
  /**
   * Artifacts pushed as referrers of the image (an SBOM attach() put beside it), by
   * manifest digest; their subject is the pushed manifest.
   */
  referrers?: string[];
}

/** How push() reaches the registry and names its target. */
export interface PushOptions {
  /** The target's name (default: the image's name + ".push"). */
  name?: string;
  /** Plain http off loopback (loopback registries are always plain http). */
  insecure?: boolean;
}

/** A record, in every push output, of where its blobs went: a later push to another repository mounts them. */
export const PUSHED_RECORD = "pushed.json";

/** Read a reference, or say what is wrong with it in a recipe's terms. */
export function registryReference(reference: string, helper: string): RegistryReference {
  try {
    return parseRegistryReference(reference);
  } catch (error) {
    throw new CrecipeError(`${helper}(${JSON.stringify(reference)}): ${(error as Error).message}`, { fix: "a reference like 127.0.0.1:5000/team/app:1.2 or registry.example/app@sha256:…" });
  }
}

/**
 * Push an image target to a registry; the value is the pushed manifest's digest.
 *
 * ```ts
 * export const simpleImage = image("simple", [layer(libs, simple), layer(simple)]);
 * export default push(simpleImage, "127.0.0.1:5000/simple:1");
 * ```
 */
export function push(img: Node<ImageValue>, reference: string, options: PushOptions = {}): Node<PushValue> {
  const ref = registryReference(reference, "push");
  if (!ref.tag && !ref.digest) throw new CrecipeError(`push(${JSON.stringify(reference)}): no tag`, { fix: "name a tag: REPOSITORY:TAG" });
  const name = options.name ?? `${img.name.replace(/\.image$/, "")}.push`;
  const insecure = Boolean(options.insecure);
  return target(name, async (ctx) => {
    const built = await ctx.result(img);
    if (!built.path || !fs.statSync(built.path).isDirectory() || !fs.existsSync(path.join(built.path, "index.json"))) {
      throw new CrecipeError(`${ctx.name}: ${img.name} is not an image (an OCI layout directory)`, { target: ctx.name, fix: "push an image(…) or pull(…) target" });
    }
    const layout = await gzipLayout(ctx, built.path);
    const mountFrom = otherRepositories(ctx.outDir, ref, layout.blobs.map((b) => b.digest));
    const client = new RegistryClient(ref.registry, [`repository:${ref.repository}:pull,push`, ...mountFrom.map((r) => `repository:${r}:pull`)], { insecure, signal: ctx.signal });
    ctx.noteCommand(`push ${built.path} → ${client.base}/v2/${ref.repository} (${ref.tag ?? ref.digest})`);
    let referrers: string[] = [];
    try {
      await pushLayout(client, ref, layout, mountFrom);
      referrers = await pushReferrers(client, ref.repository, built.path, layout);
    } finally {
      client.close();
    }
    fs.writeFileSync(path.join(ctx.out, PUSHED_RECORD), JSON.stringify({ registry: ref.registry, repository: ref.repository, digest: layout.digest, blobs: layout.blobs.map((b) => b.digest) }));
    report(ctx, client.stats);
    ctx.trustOutputHash(`push:${layout.digest}:${ref.registry}/${ref.repository}:${ref.tag ?? ""}`);
    return {
      reference, registry: ref.registry, repository: ref.repository, digest: layout.digest,
      uploaded: client.stats.uploaded, present: client.stats.present, mounted: client.stats.mounted,
      ...(referrers.length ? { referrers } : {}),
    };
  }, { kind: "push", options: { image: img, reference, insecure } });
}

function report(ctx: BuildContext, stats: RegistryStats): void {
  ctx.log(`pushed: ${stats.uploaded} blob(s) uploaded (${stats.uploadedBytes} bytes), ${stats.present} already there, ${stats.mounted} mounted; ${stats.requests} requests`);
}

/** A blob of the layout to push. */
interface Blob {
  digest: string;
  size: number;
  file: string;
}

/** What is pushed: the blobs (config and layers), then the manifest. */
export interface PushLayout {
  blobs: Blob[];
  manifest: Buffer;
  /** sha256:… of the manifest. */
  digest: string;
}

/** Blobs first (two at a time), the manifest last; a digest the registry disagrees with is an error. */
export async function pushLayout(client: RegistryClient, ref: RegistryReference, layout: PushLayout, mountFrom: string[] = []): Promise<void> {
  const queue = [...layout.blobs];
  const worker = async () => {
    for (let blob = queue.shift(); blob; blob = queue.shift()) {
      // Another push of this build sending the same blob to the same repository: wait for
      // it (and for any that started while this one waited), then the blob is there. Two
      // uploads of one blob at once can fail in a registry (distribution 2.8 answered a
      // manifest with MANIFEST_BLOB_UNKNOWN).
      const key = `${client.base}/${ref.repository}@${blob.digest}`;
      for (let other: Promise<unknown> | undefined; (other = uploading.get(key));) await other.catch(() => {});
      const sent = client.putBlob(ref.repository, blob.digest, { file: blob.file, size: blob.size }, mountFrom);
      uploading.set(key, sent);
      try {
        await sent;
      } finally {
        if (uploading.get(key) === sent) uploading.delete(key);
      }
    }
  };
  await Promise.all([worker(), worker()]);
  const given = await client.putManifest(ref.repository, ref.tag ?? ref.digest!, layout.manifest, MEDIA.manifest);
  if (given && given !== layout.digest) {
    throw new CrecipeError(`the registry ${ref.registry} stored the manifest as ${given}, not ${layout.digest}`, { fix: "the registry rewrote the manifest: push to an OCI-conformant registry" });
  }
  if (ref.tag && ref.digest && ref.digest !== layout.digest) {
    throw new CrecipeError(`pushed ${ref.repository}:${ref.tag} as ${layout.digest}, but the reference pins ${ref.digest}`, { fix: "drop the @digest from the reference, or push the image it names" });
  }
}

/** Blob uploads under way in this process, by registry, repository and digest. */
const uploading = new Map<string, Promise<unknown>>();

/**
 * Write the pushable layout into ctx.out: the image's config, each layer gzipped (or
 * linked from the previous output, when it compressed the same layer), a manifest.
 */
async function gzipLayout(ctx: BuildContext, imageDir: string): Promise<PushLayout> {
  const blobDir = path.join(ctx.out, "blobs", "sha256");
  fs.mkdirSync(blobDir, { recursive: true });
  const imageBlob = (digest: string) => path.join(imageDir, "blobs", "sha256", digest.replace(/^sha256:/, ""));
  const index = JSON.parse(fs.readFileSync(path.join(imageDir, "index.json"), "utf8"));
  const manifest = JSON.parse(fs.readFileSync(imageBlob(index.manifests[0].digest), "utf8"));
  // uncompressed digest → gzip digest, from the previous push (what "compressed once" stands on).
  const previous = readJson<Record<string, string>>(path.join(ctx.finalPath, "layers.json")) ?? {};
  const compressed: Record<string, string> = {};
  const link = (from: string, to: string) => {
    linkBlob(from, to);
  };
  const configFile = path.join(blobDir, manifest.config.digest.replace(/^sha256:/, ""));
  link(imageBlob(manifest.config.digest), configFile);
  const blobs: Blob[] = [{ digest: manifest.config.digest, size: manifest.config.size, file: configFile }];
  const layers: { mediaType: string; digest: string; size: number }[] = [];
  for (const layer of manifest.layers as { mediaType: string; digest: string; size: number }[]) {
    if (layer.mediaType !== MEDIA.layer && layer.mediaType !== MEDIA.dockerLayer) {
      // Already compressed: pushed as it is.
      const file = path.join(blobDir, layer.digest.replace(/^sha256:/, ""));
      link(imageBlob(layer.digest), file);
      layers.push(layer);
      blobs.push({ digest: layer.digest, size: layer.size, file });
      continue;
    }
    const known = previous[layer.digest];
    const old = known && path.join(ctx.finalPath, "blobs", "sha256", known.replace(/^sha256:/, ""));
    let digest: string;
    if (old && fs.existsSync(old)) {
      digest = known;
      link(old, path.join(blobDir, known.replace(/^sha256:/, "")));
    } else {
      const tmp = path.join(ctx.tmp, "layer.gz");
      await gzipFile(ctx, imageBlob(layer.digest), tmp);
      digest = `sha256:${hashFile(tmp, undefined, false)}`;
      const to = path.join(blobDir, digest.replace(/^sha256:/, ""));
      if (fs.existsSync(to)) fs.rmSync(tmp);
      else fs.renameSync(tmp, to);
    }
    compressed[layer.digest] = digest;
    const file = path.join(blobDir, digest.replace(/^sha256:/, ""));
    const size = fs.statSync(file).size;
    layers.push({ mediaType: MEDIA.layerGzip, digest, size });
    if (!blobs.some((b) => b.digest === digest)) blobs.push({ digest, size, file });
  }
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.manifest, config: manifest.config, layers }));
  const digest = `sha256:${sha256Hex(bytes)}`;
  fs.writeFileSync(path.join(blobDir, digest.slice(7)), bytes);
  fs.writeFileSync(path.join(ctx.out, "layers.json"), JSON.stringify(compressed));
  fs.writeFileSync(path.join(ctx.out, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  fs.writeFileSync(path.join(ctx.out, "index.json"), JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [{ mediaType: MEDIA.manifest, digest, size: bytes.length, annotations: index.manifests[0].annotations ?? {} }],
  }));
  return { blobs, manifest: bytes, digest };
}

/**
 * The artifacts beside the image in its layout (attach()), pushed as referrers of the
 * pushed manifest: their blobs, then each artifact manifest (its subject now the pushed
 * manifest, whose layers are compressed), by digest. Where the registry has no referrers
 * API, the OCI 1.1 fallback: an index of them tagged sha256-<hex of the subject>.
 */
async function pushReferrers(client: RegistryClient, repository: string, imageDir: string, layout: PushLayout): Promise<string[]> {
  const index = JSON.parse(fs.readFileSync(path.join(imageDir, "index.json"), "utf8")) as { manifests: { digest: string; artifactType?: string }[] };
  const blob = (digest: string) => path.join(imageDir, "blobs", "sha256", digest.replace(/^sha256:/, ""));
  const pushed: { mediaType: string; digest: string; size: number; artifactType: string }[] = [];
  for (const m of index.manifests.filter((m) => m.artifactType)) {
    const artifact = JSON.parse(fs.readFileSync(blob(m.digest), "utf8"));
    for (const d of [artifact.config, ...artifact.layers] as { digest: string; size: number }[]) {
      await client.putBlob(repository, d.digest, { file: blob(d.digest), size: d.size });
    }
    const bytes = Buffer.from(JSON.stringify({ ...artifact, subject: { mediaType: MEDIA.manifest, digest: layout.digest, size: layout.manifest.length } }));
    const digest = `sha256:${sha256Hex(bytes)}`;
    await client.putManifest(repository, digest, bytes, MEDIA.manifest);
    pushed.push({ mediaType: MEDIA.manifest, digest, size: bytes.length, artifactType: m.artifactType! });
  }
  if (!pushed.length) return [];
  const api = await client.request("GET", `/v2/${repository}/referrers/${layout.digest}`);
  api.res.resume();
  if (api.status !== 200) {
    const tag = `sha256-${layout.digest.slice("sha256:".length)}`;
    const old = await client.getManifest(repository, tag, [MEDIA.index]);
    const known = old ? (JSON.parse(old.bytes.toString("utf8")).manifests ?? []) as typeof pushed : [];
    const manifests = [...known.filter((k) => !pushed.some((p) => p.digest === k.digest)), ...pushed];
    await client.putManifest(repository, tag, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests })), MEDIA.index);
  }
  return pushed.map((p) => p.digest);
}

/** Repositories of the same registry that crecipe pushed these blobs to (or pulled them from), from the out dir's records. */
function otherRepositories(outDir: string, ref: RegistryReference, digests: string[]): string[] {
  const wanted = new Set(digests);
  const found = new Set<string>();
  let names: string[] = [];
  try {
    names = fs.readdirSync(outDir);
  } catch {
    return [];
  }
  for (const entry of names) {
    const record = readJson<{ registry: string; repository: string; blobs: string[] }>(path.join(outDir, entry, PUSHED_RECORD));
    if (record && record.registry === ref.registry && record.repository !== ref.repository && record.blobs?.some((b) => wanted.has(b))) found.add(record.repository);
  }
  return [...found].sort();
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch {
    return undefined;
  }
}
