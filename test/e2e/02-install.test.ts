/**
 * crecipe installed as a dependency of another project (npm install <tarball>): the
 * project's recipe imports "crecipe" and `npx crecipe` builds it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { repo, tempDir, write } from "../helpers.ts";

it("npm install <tarball> then npx crecipe in another directory", () => {
  const dir = tempDir();
  const pack = spawnSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: repo, encoding: "utf8" });
  assert.equal(pack.status, 0, pack.stderr);
  const tarball = path.join(dir, pack.stdout.trim().split("\n").at(-1)!);
  const project = path.join(dir, "project");
  fs.mkdirSync(project);
  write(project, "package.json", JSON.stringify({ name: "uses-crecipe", private: true, type: "module" }));
  const install = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", tarball], { cwd: project, encoding: "utf8" });
  assert.equal(install.status, 0, install.stderr);
  write(project, "recipe.ts", `
import { file, here } from "crecipe";
import { writeFileSync } from "node:fs";
export const greeting = file("greeting.txt", async (out, ctx) => {
  writeFileSync(out, "installed: " + (await ctx.read(here("name.txt"))).toString());
});
export default greeting;
`);
  write(project, "name.txt", "ok\n");
  const run = spawnSync("npx", ["crecipe", "recipe.ts"], { cwd: project, encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(fs.readFileSync(path.join(project, "out/greeting.txt"), "utf8"), "installed: ok\n");
  const again = spawnSync("npx", ["crecipe", "recipe.ts"], { cwd: project, encoding: "utf8" });
  assert.match(again.stderr, /0 built, 1 up to date/);
});
