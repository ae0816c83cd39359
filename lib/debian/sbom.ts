/**
 * sbom(packageLayers(fs)): a CycloneDX 1.5 JSON document of a Debian tree's installed
 * packages (NAME.cdx.json): each with its version, architecture, source package, package
 * URL, the digest of the layer it lands in, and its licenses where its copyright file is
 * machine-readable (DEP-5). Byte-reproducible: the time is SOURCE_DATE_EPOCH's, the
 * serial number is derived from the content, keys and lists are in a fixed order.
 *
 * attach(image, sbom): the image with the document beside it as an OCI 1.1 artifact whose
 * subject is the image manifest (NAME.attached/, an OCI layout): the image manifest, and
 * so its digest, stays as it was.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CrecipeError } from "../engine/errors.ts";
import { sha256Hex } from "../engine/hash.ts";
import { linkOrCopy } from "../engine/io.ts";
import { type Node, resolveTarget, target } from "../engine/node.ts";
import { MEDIA } from "../formats/oci.ts";
import type { ImageValue } from "../targets/image.ts";
import { sourceDateEpoch } from "../targets/layer.ts";
import { TreeView } from "../tree/view.ts";
import type { PackageLayersValue } from "./packages.ts";

/** The media type of a CycloneDX JSON document (an SBOM artifact's type). */
export const CYCLONEDX_JSON = "application/vnd.cyclonedx+json";

/** Debian license short names (DEP-5) that have an SPDX identifier. */
const SPDX: Record<string, string> = {
  "GPL-1+": "GPL-1.0-or-later",
  "GPL-2": "GPL-2.0-only",
  "GPL-2+": "GPL-2.0-or-later",
  "GPL-3": "GPL-3.0-only",
  "GPL-3+": "GPL-3.0-or-later",
  "LGPL-2": "LGPL-2.0-only",
  "LGPL-2+": "LGPL-2.0-or-later",
  "LGPL-2.1": "LGPL-2.1-only",
  "LGPL-2.1+": "LGPL-2.1-or-later",
  "LGPL-3": "LGPL-3.0-only",
  "LGPL-3+": "LGPL-3.0-or-later",
  "BSD-2-clause": "BSD-2-Clause",
  "BSD-3-clause": "BSD-3-Clause",
  "BSD-4-clause": "BSD-4-Clause",
  "Expat": "MIT",
  "MIT": "MIT",
  "Apache-2.0": "Apache-2.0",
  "ISC": "ISC",
  "Zlib": "Zlib",
  "zlib": "Zlib",
  "Artistic": "Artistic-1.0-Perl",
  "GFDL-1.3+": "GFDL-1.3-or-later",
  "CC0-1.0": "CC0-1.0",
  "MPL-2.0": "MPL-2.0",
  "OpenSSL": "OpenSSL",
};

/** The licenses a DEP-5 copyright file names (first lines of its License fields), or none when it is not DEP-5. */
export function dep5Licenses(text: string): string[] {
  if (!/^Format:\s*https?:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0/m.test(text.split("\n", 1)[0] ?? "")) return [];
  const found = new Set<string>();
  for (const match of text.matchAll(/^License:[ \t]*(\S[^\n]*)$/gm)) {
    for (const name of match[1].split(/\s+(?:or|and)\s+|\s*,\s*/)) {
      const clean = name.replace(/^\(|\)$/g, "").trim();
      if (clean && !/\swith\s/i.test(clean)) found.add(clean);
    }
  }
  return [...found].sort();
}

/** A UUID (RFC 4122 form, version 5 bits) made of a hash: the same content, the same serial number. */
function uuidOf(hash: string): string {
  const h = hash.slice(0, 32).split("");
  h[12] = "5";
  h[16] = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  const s = h.join("");
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

/**
 * A CycloneDX 1.5 SBOM of the packages in a packageLayers() split.
 *
 * ```ts
 * export const debianSbom = sbom(packageLayers(debian));
 * ```
 */
export function sbom(layers: Node<PackageLayersValue> | string): Node<{ digest: string; size: number; packages: number }> {
  const layersNode = resolveTarget(layers) as Node<PackageLayersValue>;
  const fsNode = (layersNode.options as { fs?: Node } | null)?.fs;
  if (layersNode.kind !== "pkglayers" || !fsNode) {
    throw new CrecipeError(`sbom(${layersNode.name}): it takes the layers of a Debian tree`, { fix: "sbom(packageLayers(debianFs))" });
  }
  const epoch = sourceDateEpoch();
  return target(`${fsNode.name}.cdx.json`, async (ctx) => {
    const split = (await ctx.result(layersNode)).value;
    const view = await TreeView.open(ctx, fsNode);
    const copyright = new Map<string, string>();
    for (const e of view.entries()) {
      const m = /^usr\/share\/doc\/([^/]+)\/copyright$/.exec(e.path.toString("latin1"));
      if (m && e.type === "file") copyright.set(m[1], e.host.toString());
    }
    const layerOf = new Map(split.groups.flatMap((g) => g.packages.map((p) => [p, g.digest] as const)));
    const components = split.packages.map((p) => {
      const purl = `pkg:deb/debian/${encodeURIComponent(p.name)}@${encodeURIComponent(p.version)}?arch=${p.architecture}`;
      const file = copyright.get(p.name);
      const licenses = file ? dep5Licenses(fs.readFileSync(file, "utf8")) : [];
      return {
        type: "library",
        "bom-ref": purl,
        name: p.name,
        version: p.version,
        purl,
        ...(licenses.length ? { licenses: licenses.map((l) => (SPDX[l] ? { license: { id: SPDX[l] } } : { license: { name: l } })) } : {}),
        properties: [
          { name: "crecipe:architecture", value: p.architecture },
          ...(layerOf.get(p.name) ? [{ name: "crecipe:layer", value: `sha256:${layerOf.get(p.name)}` }] : []),
          { name: "crecipe:source", value: `${p.source} ${p.sourceVersion}` },
        ],
      };
    });
    const body = {
      metadata: {
        timestamp: new Date(epoch * 1000).toISOString().replace(/\.000Z$/, "Z"),
        tools: { components: [{ type: "application", name: "crecipe" }] },
        component: { type: "container", "bom-ref": fsNode.name, name: fsNode.name, properties: split.groups.map((g) => ({ name: "crecipe:layer", value: `sha256:${g.digest} ${g.name}` })) },
      },
      components,
    };
    const serial = `urn:uuid:${uuidOf(sha256Hex(JSON.stringify(body)))}`;
    const doc = { bomFormat: "CycloneDX", specVersion: "1.5", serialNumber: serial, version: 1, ...body };
    const bytes = Buffer.from(JSON.stringify(doc, null, 1) + "\n");
    fs.writeFileSync(ctx.out, bytes, { mode: 0o644 });
    return { digest: sha256Hex(bytes), size: bytes.length, packages: components.length };
  }, { kind: "sbom", shared: true, options: { layers: layersNode, epoch }, derived: true });
}

/**
 * The image with `document` attached as an OCI 1.1 artifact (subject: the image
 * manifest), as an OCI layout of its own. Its value is the image's: the same manifest.
 */
export function attach(img: Node<ImageValue> | string, document: Node | string): Node<ImageValue> {
  const imageNode = resolveTarget(img) as Node<ImageValue>;
  const docNode = resolveTarget(document);
  return target(`${imageNode.name.replace(/\.image$/, "")}.attached`, async (ctx) => {
    const built = await ctx.result(imageNode);
    const docPath = await ctx.need(docNode);
    const value = built.value;
    const blobs = path.join(ctx.out, "blobs", "sha256");
    fs.mkdirSync(blobs, { recursive: true });
    const from = path.join(built.path!, "blobs", "sha256");
    for (const name of fs.readdirSync(from)) linkOrCopy(path.join(from, name), path.join(blobs, name));
    for (const name of ["oci-layout", "manifest.json"]) fs.copyFileSync(path.join(built.path!, name), path.join(ctx.out, name));
    const index = JSON.parse(fs.readFileSync(path.join(built.path!, "index.json"), "utf8"));
    const subject = index.manifests[0];
    const docBytes = fs.readFileSync(docPath);
    const docDigest = sha256Hex(docBytes);
    fs.writeFileSync(path.join(blobs, docDigest), docBytes);
    const empty = Buffer.from("{}");
    const emptyDigest = sha256Hex(empty);
    if (!fs.existsSync(path.join(blobs, emptyDigest))) fs.writeFileSync(path.join(blobs, emptyDigest), empty);
    const artifact = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      artifactType: CYCLONEDX_JSON,
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: `sha256:${emptyDigest}`, size: empty.length },
      layers: [{ mediaType: CYCLONEDX_JSON, digest: `sha256:${docDigest}`, size: docBytes.length }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations: { "org.opencontainers.image.created": new Date(value.created * 1000).toISOString().replace(/\.000Z$/, "Z") },
    }));
    const artifactDigest = sha256Hex(artifact);
    fs.writeFileSync(path.join(blobs, artifactDigest), artifact);
    index.manifests.push({ mediaType: MEDIA.manifest, artifactType: CYCLONEDX_JSON, digest: `sha256:${artifactDigest}`, size: artifact.length });
    fs.writeFileSync(path.join(ctx.out, "index.json"), JSON.stringify(index));
    ctx.trustOutputHash(`attached:${value.manifest.replace(/^sha256:/, "")}:${artifactDigest}`);
    return value;
  }, { kind: "attached", shared: true, signsFiles: true, options: { image: imageNode, document: docNode } });
}
