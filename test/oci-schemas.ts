/** The OCI image-spec's own JSON schemas (test/fixtures/oci-image-spec), as validators. */
import Ajv from "ajv-draft-04";
import * as fs from "node:fs";
import * as path from "node:path";

const dir = path.join(import.meta.dirname, "fixtures", "oci-image-spec");

export type Kind = "config" | "manifest" | "index" | "layout";
const FILES: Record<Kind, string> = {
  config: "config-schema.json",
  manifest: "image-manifest-schema.json",
  index: "image-index-schema.json",
  layout: "image-layout-schema.json",
};

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addFormat("uri", true); // descriptor urls: any string; the schemas care about the rest
ajv.addFormat("date-time", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/); // RFC 3339

/** A schema without its "id"s (nested ones too): refs then resolve against the name it is registered under. */
const withoutIds = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(withoutIds);
  if (!value || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).filter(([k, v]) => !(k === "id" && typeof v === "string" && v.startsWith("http"))).map(([k, v]) => [k, withoutIds(v)]));
};
// The schemas refer to each other by file name, relative to their ids
// (https://opencontainers.org/schema/image/…, …/schema/…), as image-spec's own validator
// maps them to its files: each is registered under every name it is reached by.
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
  for (const base of ["https://opencontainers.org/schema/image/", "https://opencontainers.org/schema/", ""]) {
    ajv.addSchema(withoutIds(JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"))) as object, base + file);
  }
}

/** The schema's complaints about `doc` as a `kind` document, or [] when it is valid. */
export function schemaErrors(kind: Kind, doc: unknown): string[] {
  const validate = ajv.getSchema(`https://opencontainers.org/schema/image/${FILES[kind]}`)!;
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`);
}

/** Validate every JSON document of an image directory (crecipe's image() output). */
export function imageErrors(imageDir: string): string[] {
  const read = (p: string) => JSON.parse(fs.readFileSync(path.join(imageDir, p), "utf8"));
  const errors: string[] = [];
  const index = read("index.json");
  errors.push(...schemaErrors("index", index).map((e) => `index.json: ${e}`));
  errors.push(...schemaErrors("layout", read("oci-layout")).map((e) => `oci-layout: ${e}`));
  for (const m of index.manifests ?? []) {
    const manifest = read(`blobs/sha256/${m.digest.slice(7)}`);
    errors.push(...schemaErrors("manifest", manifest).map((e) => `manifest: ${e}`));
    // An image's config is an image config; an artifact's (an attached SBOM) is another kind of document.
    if (manifest.config.mediaType === "application/vnd.oci.image.config.v1+json") {
      errors.push(...schemaErrors("config", read(`blobs/sha256/${manifest.config.digest.slice(7)}`)).map((e) => `config: ${e}`));
    } else if (!manifest.artifactType && manifest.config.mediaType !== "application/vnd.oci.empty.v1+json") errors.push(`manifest: config ${manifest.config.mediaType} is neither an image config nor an artifact's`);
  }
  return errors;
}
