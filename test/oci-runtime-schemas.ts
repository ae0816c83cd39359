/** The OCI runtime-spec's own JSON schema for config.json (test/fixtures/oci-runtime-spec), as a validator. */
import Ajv from "ajv-draft-04";
import * as fs from "node:fs";
import * as path from "node:path";

const dir = path.join(import.meta.dirname, "fixtures", "oci-runtime-spec");
const ajv = new Ajv({ allErrors: true, strict: false });
// The schemas refer to each other by file name ("defs.json#/definitions/…").
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
  ajv.addSchema(JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")), file);
}

/** The schema's complaints about a config.json document, or [] when it is valid. */
export function runtimeConfigErrors(doc: unknown): string[] {
  const validate = ajv.getSchema("config-schema.json")!;
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`);
}
