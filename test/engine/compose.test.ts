/**
 * One-off scripts that compose recipes (README, "Node, Deno, and scripts"): the same fs
 * layered on several diffbases, listed, compressed and run in several ways in one graph,
 * without inventing names; targets named by their declared names; an unknown name says
 * which names are near.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { it } from "node:test";
import { crecipe, modUrl, read, repo, tempDir, write } from "../helpers.ts";

const simpleRecipe = path.join(repo, "recipes", "simple.ts");

it("a script composes on recipes/simple.ts: derived names say the diffbase, the cookbook's stay", () => {
  const dir = tempDir();
  write(dir, "script.ts", `import { build, fs, gz, image, layer, list, run, sha256 } from ${JSON.stringify(modUrl)};
import { libs, simple, simpleImage } from ${JSON.stringify(simpleRecipe)};

// An app on top of libs, named by strings as well as by nodes.
const app = fs("app", async (root) => {
  await root.from("libs");
  await root.write("/etc/motd", "composed\\n");
});
const full = layer(libs);                  // libs alone: simple.ts has libs.layer on simple already
const cookbook = layer(libs, simple);      // the same node as simple.ts's
const byName = layer("libs", "simple");    // and again, by name
const appLayer = layer(app, "libs");
const mine = image("mine", [full, appLayer]);
const results = await build([
  full, cookbook, byName, list(libs), list(libs, simple), appLayer, gz(full), gz("libs.layer"), sha256(appLayer),
  run.local(libs), run.local("libs", { command: ["/bin/hello"] }), mine, simpleImage,
]);
console.log(JSON.stringify({ same: cookbook === byName, names: results.map((r) => r.name) }));
`);
  const r = crecipe(dir, ["script.ts"]);
  assert.equal(r.status, 0, r.stderr);
  const { same, names } = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.equal(same, true);
  assert.deepEqual(names, [
    "libs.full.layer", "libs.layer", "libs.layer", "libs.full.list", "libs.list", "app.layer", "libs.full.layer.gz", "libs.layer.gz",
    "app.layer.sha256", "libs.runlocal", names[10], "mine.image", "simple.image",
  ]);
  assert.match(names[10], /^libs\+[0-9a-f]{6}\.runlocal$/);
  assert.equal(read(dir, `out/${names[10]}`), read(dir, "out/libs.runlocal"));
  // The full layer holds simple's files too, the cookbook's only the libraries.
  assert.match(read(dir, "out/libs.full.list"), /bin\/hello/);
  assert.doesNotMatch(read(dir, "out/libs.list"), /bin\/hello/);
  // A second run is a no-op: every derived name is the same again.
  const again = crecipe(dir, ["script.ts"]);
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout.trim().split("\n").pop()!).names, names);
  assert.doesNotMatch(again.stderr, /crecipe  /);
});

it("an unknown target name lists the nearest declared ones", () => {
  const dir = tempDir();
  write(dir, "typo.ts", `import { layer } from ${JSON.stringify(modUrl)};
import ${JSON.stringify(simpleRecipe)};
export default layer("lib");
`);
  const r = crecipe(dir, ["typo.ts"]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /no target "lib"; did you mean "libs"\?/);
  write(dir, "none.ts", `import { gz } from ${JSON.stringify(modUrl)};
export default gz("nothing");
`);
  const none = crecipe(dir, ["none.ts"]);
  assert.equal(none.status, 2, none.stderr);
  assert.match(none.stderr, /no target "nothing" is declared/);
});
