/** The CLI's other verbs: --list, --graph, --clean (keeps precious), --xclean, usage errors. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { crecipe, modUrl, tempDir, write } from "../helpers.ts";

const recipe = `
import { file, here, target } from ${JSON.stringify(modUrl)};
import { readFileSync, writeFileSync } from "node:fs";
export const slow = file("download.txt", async (out, ctx) => { writeFileSync(out, await ctx.read(here("input.txt"))); }, { precious: true });
export const app = file("app.txt", async (out, ctx) => { writeFileSync(out, "app " + readFileSync(await ctx.need(slow), "utf8")); });
export default app;
`;

it("--list, --graph, --clean, --xclean and usage errors", () => {
  const dir = tempDir();
  write(dir, "input.txt", "data\n");
  write(dir, "r.ts", recipe);
  const list0 = crecipe(dir, ["r.ts", "--list"]);
  assert.match(list0.stdout, /^download\.txt +file +would rebuild +it was never built \[precious\]$/m);
  assert.equal(crecipe(dir, ["r.ts"]).status, 0);
  assert.match(crecipe(dir, ["r.ts", "--list"]).stdout, /^app\.txt +file +up to date$/m);

  const graph = crecipe(dir, ["r.ts", "--graph"]).stdout;
  assert.match(graph, /^app\.txt\n  download\.txt\n    .*input\.txt \(host file\)$/m);
  const dot = crecipe(dir, ["r.ts", "--graph=dot"]).stdout;
  assert.match(dot, /"app\.txt" -> "download\.txt";/);

  const clean = crecipe(dir, ["r.ts", "--clean"]);
  assert.equal(clean.status, 0);
  assert.match(clean.stderr, /removed 1 outputs; kept download\.txt/);
  assert.ok(fs.existsSync(path.join(dir, "out/download.txt")));
  assert.ok(!fs.existsSync(path.join(dir, "out/app.txt")));
  assert.match(crecipe(dir, ["r.ts"]).stderr, /1 built, 1 up to date/, "the precious download is not rebuilt");

  assert.equal(crecipe(dir, ["--xclean"]).status, 0);
  assert.ok(!fs.existsSync(path.join(dir, "out")));

  const bad = crecipe(dir, ["r.ts", "--no-such-option"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown option --no-such-option/);
  const missing = crecipe(dir, ["r.ts", "nothing.here"]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /no target named nothing\.here .*\n  fix: known targets: download\.txt, app\.txt/);
  write(dir, "broken.ts", "export const x: number = ;\n");
  const broken = crecipe(dir, ["broken.ts"]);
  assert.equal(broken.status, 2);
  assert.match(broken.stderr, /^crecipe: error: cannot compile .*broken\.ts:1:26: Unexpected ";"$/m);
  assert.match(crecipe(dir, ["--version"]).stdout, /^\d+\.\d+\.\d+\n$/);
  assert.match(crecipe(dir, ["--help"]).stdout, /usage: crecipe \[options\] RECIPE\.ts \[TARGET…\]/);
});
