#!/usr/bin/env node
// The `crecipe` command for Node: load the TypeScript CLI through the transform cache.
// Stack traces point at the recipe's own lines (source maps), for error messages.
// `crecipe serve` and `crecipe fetch` load only their own module (bin/verbs.ts), which
// does not load the build engine.
import { importTs, prepareEarly, sourceIndex } from "./boot.js";
import { recipeArgument } from "./options.js";

process.setSourceMapsEnabled?.(true);
const argv = process.argv.slice(2);
// The recipe, as the CLI will find it, starts loading now, beside the CLI's own: an edited
// one is transformed meanwhile.
const recipe = recipeArgument(argv);
if (recipe) prepareEarly(recipe);
let verbs;
let cli;
try {
  verbs = await importTs(new URL("./verbs.ts", import.meta.url).pathname);
  if (!verbs.VERBS.includes(argv[0])) cli = await importTs(new URL("./cli.ts", import.meta.url).pathname);
} catch (error) {
  console.error(`crecipe: error: ${error.message}`);
  process.exit(2);
}
process.exitCode = cli ? await cli.run(argv, importTs, sourceIndex) : await verbs.runVerb(argv);
