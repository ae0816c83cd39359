/** Deno: the same recipe builds under Deno 2 and shares its state with Node. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { it } from "node:test";
import { crecipe, modUrl, read, repo, tempDir, write } from "../helpers.ts";

const deno = path.join(repo, "node_modules", ".bin", "deno");

function denoCrecipe(cwd: string, args: string[]) {
  const r = spawnSync(deno, ["run", "-A", `--config=${path.join(repo, "deno.json")}`, path.join(repo, "bin", "crecipe.ts"), ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  return r;
}

it("a recipe built under Deno is a no-op under Node, and the other way round", () => {
  const dir = tempDir();
  write(dir, "input.txt", "from deno\n");
  write(dir, "r.ts", `
import { file, here, $ } from ${JSON.stringify(modUrl)};
import { readFileSync, writeFileSync } from "node:fs";
export const src = file("src.txt", async (out, ctx) => { writeFileSync(out, await ctx.read(here("input.txt"))); });
export const shout = file("shout.txt", async (out, ctx) => {
  const text = readFileSync(await ctx.need(src), "utf8");
  await $\`printf '%s' \${text.toUpperCase()} > \${out}\`;
});
export default shout;`);
  const first = denoCrecipe(dir, ["r.ts"]);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /2 built, 0 up to date/);
  assert.equal(read(dir, "out/shout.txt"), "FROM DENO\n");
  const node = crecipe(dir, ["r.ts"]);
  assert.equal(node.status, 0, node.stderr);
  assert.match(node.stderr, /0 built, 2 up to date/);
  write(dir, "input.txt", "from node\n");
  assert.match(crecipe(dir, ["r.ts"]).stderr, /2 built, 0 up to date/);
  const again = denoCrecipe(dir, ["r.ts"]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /0 built, 2 up to date/);
  assert.equal(read(dir, "out/shout.txt"), "FROM NODE\n");
});

it("the library and the CLI type-check under deno check", () => {
  const r = spawnSync(deno, ["check", `--config=${path.join(repo, "deno.json")}`, "lib/mod.ts", "bin/cli.ts"], {
    cwd: repo,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  assert.equal(r.status, 0, r.stderr);
});
