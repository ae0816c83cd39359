/**
 * Image metadata, pure: the OCI image config, manifest and index, and Docker's
 * manifest.json, from layer digests. One image tar carries both, so `docker load`
 * (20.10's manifest.json, and current Docker's OCI layout) and skopeo/podman/umoci
 * (oci-archive) all read it. JSON with a fixed key order: equal inputs, equal bytes.
 */
import { createHash } from "node:crypto";
import { FormatError } from "./entry.ts";

export const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

/** What an image runs and how it is named: its OCI config's fields. */
export interface ImageConfig {
  /** The program that runs (before `cmd`). */
  entrypoint?: string[];
  /** Default ["/init"], as in the cookbook. */
  cmd?: string[];
  /** Environment, as NAME=value (default: a standard PATH). */
  env?: string[];
  /** The working directory. */
  workdir?: string;
  /** The user it runs as ("1000:1000", "app"). */
  user?: string;
  /** Labels (org.opencontainers.image.* and your own). */
  labels?: Record<string, string>;
  /** The name:tag Docker and OCI tools see (default NAME:latest). */
  tag?: string;
}

export interface LayerRef {
  /** sha256 hex of the uncompressed layer tar (its diff_id and its blob digest). */
  digest: string;
  size: number;
  /** What made it, for the history. */
  createdBy: string;
}

export interface Blob {
  digest: string;
  bytes: Buffer;
}

const blob = (value: unknown): Blob => {
  const bytes = Buffer.from(JSON.stringify(value));
  return { digest: createHash("sha256").update(bytes).digest("hex"), bytes };
};

export function goArch(arch: string = process.arch): string {
  return ({ x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" } as Record<string, string>)[arch] ?? arch;
}

/**
 * An image reference as the distribution spec reads one: `[host[:port]/]path[:tag][@digest]`.
 * The tag is after the last ":" only when that ":" comes after the last "/" (a registry's
 * port is not a tag); a reference without tag or digest gets `latest`.
 */
export function parseReference(reference: string): { repository: string; tag?: string; digest?: string; full: string } {
  const at = reference.indexOf("@");
  const digest = at >= 0 ? reference.slice(at + 1) : undefined;
  const rest = at >= 0 ? reference.slice(0, at) : reference;
  const colon = rest.lastIndexOf(":");
  const slash = rest.lastIndexOf("/");
  let repository = rest;
  let tag: string | undefined;
  if (colon > slash) {
    repository = rest.slice(0, colon);
    tag = rest.slice(colon + 1);
  }
  if (!tag && !digest) tag = "latest";
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repository.replace(/^[^/]*[.:][^/]*\/|^localhost\//, ""))) {
    throw new FormatError(`${JSON.stringify(reference)} is not an image reference: the name must be lower-case letters, digits and separators (. _ __ -), in parts divided by /`);
  }
  if (tag !== undefined && !/^[\w][\w.-]{0,127}$/.test(tag)) throw new FormatError(`${JSON.stringify(reference)}: the tag ${JSON.stringify(tag)} is not valid (letters, digits, _ . -, up to 128)`);
  if (digest !== undefined && !/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest)) throw new FormatError(`${JSON.stringify(reference)}: ${JSON.stringify(digest)} is not a digest`);
  return { repository, tag, digest, full: `${repository}${tag ? `:${tag}` : ""}${digest ? `@${digest}` : ""}` };
}

/** Where an image reference points: the registry host, the repository on it, and a tag or digest. */
export interface RegistryReference {
  /** host[:port] as written ("docker.io" when the reference names none). */
  registry: string;
  /** The repository path on that registry ("library/debian" for Docker Hub's short names). */
  repository: string;
  tag?: string;
  digest?: string;
}

/**
 * Split a reference the way docker and the distribution spec do: the first part is a
 * registry only when it has a "." or a ":" or is "localhost" ("127.0.0.1:5000/app:1" is
 * on 127.0.0.1:5000; "team/app" is Docker Hub's); a registry's port is never a tag.
 */
export function parseRegistryReference(reference: string): RegistryReference {
  const parsed = parseReference(reference);
  const slash = parsed.repository.indexOf("/");
  const first = slash < 0 ? "" : parsed.repository.slice(0, slash);
  const hasRegistry = first !== "" && (/[.:]/.test(first) || first === "localhost");
  const registry = hasRegistry ? first : "docker.io";
  let repository = hasRegistry ? parsed.repository.slice(slash + 1) : parsed.repository;
  if (registry === "docker.io" && !repository.includes("/")) repository = `library/${repository}`;
  return { registry, repository, tag: parsed.tag, digest: parsed.digest };
}

/** NAME:latest, the name made a valid repository name (lower case; other characters become "-"). */
export function defaultTag(name: string): string {
  const repository = name.toLowerCase().replace(/[^a-z0-9._/-]+/g, "-").replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "") || "image";
  return `${repository}:latest`;
}

/** Everything the image tar holds besides the layer blobs. */
export function imageMetadata(name: string, layers: LayerRef[], config: ImageConfig, created: number, arch = goArch()) {
  if (layers.length === 0) throw new FormatError(`image ${name} has no layers: an image manifest needs at least one (OCI image-spec)`);
  const date = new Date(created * 1000).toISOString().replace(/\.000Z$/, "Z");
  const runConfig: Record<string, unknown> = {};
  if (config.user) runConfig.User = config.user;
  runConfig.Env = config.env ?? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
  if (config.entrypoint) runConfig.Entrypoint = config.entrypoint;
  runConfig.Cmd = config.cmd ?? ["/init"];
  if (config.workdir) runConfig.WorkingDir = config.workdir;
  if (config.labels) runConfig.Labels = Object.fromEntries(Object.entries(config.labels).sort(([a], [b]) => (a < b ? -1 : 1)));
  const configBlob = blob({
    architecture: arch,
    os: "linux",
    created: date,
    config: runConfig,
    rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${l.digest}`) },
    history: layers.map((l) => ({ created: date, created_by: l.createdBy })),
  });
  const manifestBlob = blob({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: MEDIA.config, digest: `sha256:${configBlob.digest}`, size: configBlob.bytes.length },
    layers: layers.map((l) => ({ mediaType: MEDIA.layer, digest: `sha256:${l.digest}`, size: l.size })),
  });
  const reference = parseReference(config.tag ?? defaultTag(name));
  const tag = reference.full;
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [{
      mediaType: MEDIA.manifest,
      digest: `sha256:${manifestBlob.digest}`,
      size: manifestBlob.bytes.length,
      annotations: { "io.containerd.image.name": tag, "org.opencontainers.image.ref.name": reference.tag ?? reference.digest! },
      platform: { architecture: arch, os: "linux" },
    }],
  }));
  const dockerManifest = Buffer.from(JSON.stringify([{
    Config: `blobs/sha256/${configBlob.digest}`,
    RepoTags: [tag],
    Layers: layers.map((l) => `blobs/sha256/${l.digest}`),
  }]));
  return {
    config: configBlob,
    manifest: manifestBlob,
    index,
    dockerManifest,
    ociLayout: Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })),
    tag,
  };
}
