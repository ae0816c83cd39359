/**
 * Image metadata, pure: the OCI image config, manifest and index, and Docker's
 * manifest.json, from layer digests. One image tar carries both, so `docker load`
 * (20.10's manifest.json, and current Docker's OCI layout) and skopeo/podman/umoci
 * (oci-archive) all read it. JSON with a fixed key order: equal inputs, equal bytes.
 */
import { createHash } from "node:crypto";

export const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar",
} as const;

export interface ImageConfig {
  entrypoint?: string[];
  /** Default ["/init"], as in the cookbook. */
  cmd?: string[];
  env?: string[];
  workdir?: string;
  user?: string;
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

/** Everything the image tar holds besides the layer blobs. */
export function imageMetadata(name: string, layers: LayerRef[], config: ImageConfig, created: number, arch = goArch()) {
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
  const tag = config.tag ?? `${name}:latest`;
  const refName = tag.slice(tag.lastIndexOf(":") + 1);
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [{
      mediaType: MEDIA.manifest,
      digest: `sha256:${manifestBlob.digest}`,
      size: manifestBlob.bytes.length,
      annotations: { "io.containerd.image.name": tag, "org.opencontainers.image.ref.name": refName },
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
