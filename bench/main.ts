/** npm run bench: every case beside its peer measured in the same run. */
import * as path from "node:path";
import { chunkCases } from "./chunks.ts";
import { bundleCases } from "./bundles.ts";
import { debianCases } from "./debian.ts";
import { engineCases } from "./engine.ts";
import { kvmCases } from "./kvm.ts";
import { layerCases } from "./layers.ts";
import { registryCases } from "./registry.ts";
import { type Row, table } from "./util.ts";

const repo = path.resolve(import.meta.dirname, "..");
const only = process.argv[2];
const rows: Row[] = [];
const suites: Record<string, () => Row[] | Promise<Row[]>> = {
  engine: () => engineCases(repo),
  layers: () => layerCases(repo),
  kvm: () => kvmCases(repo),
  debian: () => debianCases(repo),
  chunks: () => chunkCases(repo),
  bundles: () => bundleCases(repo),
  registry: () => registryCases(repo),
};
for (const [name, suite] of Object.entries(suites)) {
  if (only && only !== name) continue;
  console.error(`bench: ${name}…`);
  rows.push(...(await suite()));
}
console.log(table(rows));
