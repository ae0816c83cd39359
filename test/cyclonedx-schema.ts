/**
 * CycloneDX 1.5's JSON schema, as @cyclonedx/cyclonedx-library ships it (with the SPDX
 * license list and JSF schemas it refers to), compiled with ajv: what an SBOM must pass.
 */
import Ajv from "ajv";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";

const require = createRequire(import.meta.url);
const dir = path.join(path.dirname(require.resolve("@cyclonedx/cyclonedx-library/package.json")), "res/schema");
const read = (file: string) => {
  const schema = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
  delete schema.$id; // added under the name the bom schema refers to it by
  return schema;
};

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addFormat("date-time", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
ajv.addFormat("iri-reference", true);
ajv.addFormat("uri", true);
ajv.addFormat("idn-email", true);
ajv.addSchema(read("spdx.SNAPSHOT.schema.json"), "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json");
ajv.addSchema(read("jsf-0.82.SNAPSHOT.schema.json"), "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json");
const validate = ajv.compile({ ...read("bom-1.5.SNAPSHOT.schema.json"), $id: "http://cyclonedx.org/schema/bom-1.5.schema.json" });

/** What in `doc` breaks the CycloneDX 1.5 schema (none: valid). */
export function cyclonedxErrors(doc: unknown): string[] {
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}
