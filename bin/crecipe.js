#!/usr/bin/env node
// The `crecipe` command for Node: load the TypeScript CLI through the transform cache.
// Stack traces point at the recipe's own lines (source maps), for error messages.
import { importTs } from "./boot.js";

process.setSourceMapsEnabled?.(true);
const cli = await importTs(new URL("./cli.ts", import.meta.url).pathname);
process.exitCode = await cli.run(process.argv.slice(2), importTs);
