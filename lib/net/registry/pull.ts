/**
 * pull("host[:port]/repo:tag"): an image from a registry as an image target, out/NAME.pull/:
 * an OCI layout like image()'s, with uncompressed layer tars, so it can be the base of an
 * image (`image("app", [base, layer(app)])`), a bundle, or loaded into Docker.
 *
 * Nothing unverified lands: the manifest's digest is checked against the reference's when
 * it pins one, the config's and every compressed blob's against the manifest, and every
 * uncompressed layer against the config's diff_ids. A mismatch is an error naming the
 * blob; the output is then not written at all.
 *
 * A tag is read once: the target is up to date afterwards, like any download. Pin a
 * digest (`repo:tag@sha256:…`) for a base that cannot move; remove out/NAME.pull (or
 * `crecipe --clean`) to read the tag again.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { CrecipeError } from "../../engine/errors.ts";
import { sha256Hex } from "../../engine/hash.ts";
import { type Node, target } from "../../engine/node.ts";
import type { BuildContext } from "../../engine/types.ts";
import { goArch, MEDIA, type RegistryReference } from "../../formats/oci.ts";
import { zlib } from "../../runtime.ts";
import type { ImageValue } from "../../targets/image.ts";
import { RegistryClient } from "./client.ts";
import { PUSHED_RECORD, registryReference } from "./push.ts";

/** A pulled image's value: an image's, and where it came from. */
export interface PullValue extends ImageValue {
  /** registry/repository@sha256:… of the manifest pulled. */
  source: string;
}

/** How pull() reaches the registry and names its target. */
export interface PullOptions {
  /** The target's name, without ".pull" (default: the repository's last part and the tag, "app-1.2"). */
  name?: string;
  /** Plain http off loopback. */
  insecure?: boolean;
  /** The architecture to take from a multi-platform index (default: this machine's, as Go names it). */
  arch?: string;
}

const ACCEPT = [MEDIA.manifest, MEDIA.index, MEDIA.dockerManifest, MEDIA.dockerList];

/**
 * An image from a registry, verified blob by blob, as an OCI layout to build on.
 *
 * ```ts
 * const base = pull("127.0.0.1:5000/simple:1");
 * export const app = image("app", [base, layer(appFs)]);
 * ```
 */
export function pull(reference: string, options: PullOptions = {}): Node<PullValue> {
  const ref = registryReference(reference, "pull");
  const last = ref.repository.split("/").pop()!;
  const name = `${options.name ?? `${last}-${ref.tag ?? ref.digest!.replace(/^sha256:/, "").slice(0, 12)}`}.pull`;
  const insecure = Boolean(options.insecure);
  const arch = options.arch ?? goArch();
  return target(name, async (ctx) => {
    const client = new RegistryClient(ref.registry, [`repository:${ref.repository}:pull`], { insecure, signal: ctx.signal });
    ctx.noteCommand(`pull ${client.base}/v2/${ref.repository} (${ref.tag ?? ref.digest}) → ${ctx.name}`);
    try {
      const value = await pullInto(ctx, client, ref, reference, arch);
      ctx.log(`pulled ${value.source}: ${value.layers.length} layer(s), ${client.stats.downloadedBytes} bytes in ${client.stats.requests} requests`);
      fs.writeFileSync(path.join(ctx.out, PUSHED_RECORD), JSON.stringify({ registry: ref.registry, repository: ref.repository, digest: value.source.split("@")[1], blobs: value.blobs }));
      ctx.trustOutputHash(`image:${value.manifest}`);
      const { blobs: _blobs, ...image } = value;
      return image;
    } finally {
      client.close();
    }
  }, { kind: "image", signsFiles: true, options: { reference, insecure, arch } });
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture?: string; os?: string };
}

const hex = (digest: string) => digest.replace(/^sha256:/, "");

function corrupt(ctx: BuildContext, ref: RegistryReference, what: string, want: string, got: string): CrecipeError {
  return new CrecipeError(`${what} of ${ref.registry}/${ref.repository} is corrupt: it should hash to ${want}, it hashes to ${got}`, {
    target: ctx.name,
    fix: `the registry's copy is damaged (or was changed): push the image to it again, then build again`,
  });
}

async function pullInto(ctx: BuildContext, client: RegistryClient, ref: RegistryReference, reference: string, arch: string): Promise<PullValue & { blobs: string[] }> {
  let got = await client.getManifest(ref.repository, ref.digest ?? ref.tag!, ACCEPT);
  if (!got) {
    throw new CrecipeError(`${reference}: no such image in ${ref.registry} (the manifest ${ref.repository}:${ref.digest ?? ref.tag} is not there)`, {
      target: ctx.name,
      fix: "check the repository and the tag (push it first?)",
    });
  }
  let digest = `sha256:${sha256Hex(got.bytes)}`;
  if (ref.digest && digest !== ref.digest) throw corrupt(ctx, ref, `the manifest ${ref.digest}`, ref.digest, digest);
  let doc = JSON.parse(got.bytes.toString("utf8")) as { mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
  if (doc.manifests) {
    const wanted = doc.manifests.find((m) => m.platform?.os === "linux" && m.platform?.architecture === arch) ?? (doc.manifests.length === 1 ? doc.manifests[0] : undefined);
    if (!wanted) {
      throw new CrecipeError(`${reference} has no image for linux/${arch} (it has ${doc.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`).join(", ")})`, {
        target: ctx.name,
        fix: "pull(ref, { arch: … }) to take another",
      });
    }
    got = await client.getManifest(ref.repository, wanted.digest, ACCEPT);
    if (!got) throw new CrecipeError(`${reference}: the index names ${wanted.digest}, which the registry does not have`, { target: ctx.name, fix: "push the image again" });
    digest = `sha256:${sha256Hex(got.bytes)}`;
    if (digest !== wanted.digest) throw corrupt(ctx, ref, `the manifest ${wanted.digest}`, wanted.digest, digest);
    doc = JSON.parse(got.bytes.toString("utf8"));
  }
  if (!doc.config || !doc.layers) throw new CrecipeError(`${reference}: the manifest has no config or no layers (${got.mediaType})`, { target: ctx.name });
  const blobs = path.join(ctx.out, "blobs", "sha256");
  fs.mkdirSync(blobs, { recursive: true });

  const configParts: Buffer[] = [];
  await client.getBlob(ref.repository, doc.config.digest, (data) => void configParts.push(data));
  const configBytes = Buffer.concat(configParts);
  const configDigest = `sha256:${sha256Hex(configBytes)}`;
  if (configDigest !== doc.config.digest) throw corrupt(ctx, ref, `the config ${doc.config.digest}`, doc.config.digest, configDigest);
  const config = JSON.parse(configBytes.toString("utf8")) as { created?: string; rootfs?: { diff_ids?: string[] } };
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== doc.layers.length) {
    throw new CrecipeError(`${reference}: the config names ${diffIds.length} layer(s), the manifest ${doc.layers.length}`, { target: ctx.name, fix: "the image is malformed: push it again" });
  }
  fs.writeFileSync(path.join(blobs, hex(configDigest)), configBytes);

  const layers: string[] = [];
  for (const [i, layer] of doc.layers.entries()) {
    const gzipped = layer.mediaType === MEDIA.layerGzip || layer.mediaType === MEDIA.dockerLayerGzip;
    if (!gzipped && layer.mediaType !== MEDIA.layer && layer.mediaType !== MEDIA.dockerLayer) {
      throw new CrecipeError(`${reference}: layer ${layer.digest} is ${layer.mediaType}; crecipe pulls tar and tar+gzip layers`, { target: ctx.name, fix: "push the image with gzip layers" });
    }
    const wire = path.join(ctx.tmp, "blob");
    const fd = fs.openSync(wire, "w");
    const hash = createHash("sha256");
    try {
      await client.getBlob(ref.repository, layer.digest, (data) => {
        hash.update(data);
        fs.writeSync(fd, data);
      });
    } finally {
      fs.closeSync(fd);
    }
    const wireDigest = `sha256:${hash.digest("hex")}`;
    if (wireDigest !== layer.digest) throw corrupt(ctx, ref, `layer ${layer.digest}`, layer.digest, wireDigest);
    const tar = path.join(ctx.tmp, "layer.tar");
    if (gzipped) await gunzip(wire, tar);
    else fs.renameSync(wire, tar);
    const tarDigest = `sha256:${await hashStream(tar)}`;
    if (tarDigest !== diffIds[i]) throw corrupt(ctx, ref, `layer ${layer.digest} (uncompressed)`, diffIds[i], tarDigest);
    const to = path.join(blobs, hex(tarDigest));
    if (fs.existsSync(to)) fs.rmSync(tar);
    else fs.renameSync(tar, to);
    fs.rmSync(wire, { force: true });
    layers.push(hex(tarDigest));
  }

  // The local layout: the same config (so the same image ID), layers as uncompressed tars.
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: MEDIA.config, digest: configDigest, size: configBytes.length },
    layers: layers.map((l) => ({ mediaType: MEDIA.layer, digest: `sha256:${l}`, size: fs.statSync(path.join(blobs, l)).size })),
  }));
  const manifestDigest = sha256Hex(manifest);
  fs.writeFileSync(path.join(blobs, manifestDigest), manifest);
  const tag = `${ref.registry}/${ref.repository}:${ref.tag ?? "latest"}`;
  fs.writeFileSync(path.join(ctx.out, "index.json"), JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [{
      mediaType: MEDIA.manifest,
      digest: `sha256:${manifestDigest}`,
      size: manifest.length,
      annotations: { "io.containerd.image.name": tag, "org.opencontainers.image.ref.name": ref.tag ?? "latest" },
      platform: { architecture: arch, os: "linux" },
    }],
  }));
  fs.writeFileSync(path.join(ctx.out, "manifest.json"), JSON.stringify([{ Config: `blobs/sha256/${hex(configDigest)}`, RepoTags: [tag], Layers: layers.map((l) => `blobs/sha256/${l}`) }]));
  fs.writeFileSync(path.join(ctx.out, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const created = config.created ? Math.floor(Date.parse(config.created) / 1000) || 0 : 0;
  return {
    id: configDigest,
    manifest: `sha256:${manifestDigest}`,
    tag,
    layers,
    created,
    source: `${ref.registry}/${ref.repository}@${digest}`,
    blobs: [doc.config.digest, ...doc.layers.map((l) => l.digest)],
  };
}

function gunzip(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const input = fs.createReadStream(from);
    const output = fs.createWriteStream(to);
    const unzip = zlib().createGunzip();
    const fail = (error: Error) => {
      input.destroy();
      output.destroy();
      reject(new CrecipeError(`a layer does not gunzip: ${error.message}`, { fix: "the registry's copy is damaged: push the image again", cause: error }));
    };
    input.on("error", fail);
    unzip.on("error", fail);
    output.on("error", fail);
    output.on("finish", () => resolve());
    input.pipe(unzip).pipe(output);
  });
}

function hashStream(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    fs.createReadStream(file).on("data", (d) => hash.update(d)).on("end", () => resolve(hash.digest("hex"))).on("error", reject);
  });
}
