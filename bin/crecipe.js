#!/usr/bin/env node
// The `crecipe` command for Node: load the TypeScript CLI through the transform cache.
// Stack traces point at the recipe's own lines (source maps), for error messages.
import { importTs, sourceIndex } from "./boot.js";

process.setSourceMapsEnabled?.(true);
let cli;
try {
  cli = await importTs(new URL("./cli.ts", import.meta.url).pathname);
} catch (error) {
  console.error(`crecipe: error: ${error.message}`);
  process.exit(2);
}
process.exitCode = await cli.run(process.argv.slice(2), importTs, sourceIndex);
