#!/usr/bin/env -S deno run -A
// The `crecipe` command for Deno: `deno run -A bin/crecipe.ts RECIPE.ts`.
// It loads recipes through the same transform cache as Node, so a builder's text, and
// with it the build state, is the same under both runtimes.
import "./crecipe.js";
