/**
 * Output and state move together: when the state cannot be written (a read-only state
 * directory here; a full disk behaves alike), the run fails and leaves the old output
 * with the old state, and no temp file.
 */
import assert from "node:assert/strict";

import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { crecipeAsTestUser, hasTestUser, modUrl, NEEDS_TEST_USER, tempDir, waitFor, write } from "../helpers.ts";

it("a state that cannot be written leaves the old output and state, and no temp", { skip: hasTestUser ? false : "needs root and the crecipe-test user (a read-only directory binds root too little)" }, () => {
  const dir = tempDir();
  fs.chmodSync(dir, 0o777);
  const recipe = (text: string) => `
import { file, fs } from ${JSON.stringify(modUrl)};
import { writeFileSync } from "node:fs";
export const f = file("f.txt", async (out) => writeFileSync(out, "${text}"));
export const t = fs("t", async (root) => { await root.write("x", "${text}"); });
export default [f, t];
`;
  write(dir, "r.ts", recipe("old"));
  const asUser = (...args: string[]) => crecipeAsTestUser(dir, args);
  assert.equal(asUser("r.ts").status, 0);
  const stateDir = path.join(dir, "out/.crecipe/state");
  const states = () => fs.readdirSync(stateDir).sort().map((f) => fs.readFileSync(path.join(stateDir, f), "utf8"));
  const before = states();
  write(dir, "r.ts", recipe("new"));
  fs.chmodSync(stateDir, 0o555);
  const r = asUser("r.ts");
  fs.chmodSync(stateDir, 0o755);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /FAILED (f\.txt|t): .*(EACCES|permission denied)/i);
  assert.equal(fs.readFileSync(path.join(dir, "out/f.txt"), "utf8"), "old");
  assert.equal(fs.readFileSync(path.join(dir, "out/t/x"), "utf8"), "old");
  assert.deepEqual(states(), before);
  const strays = [...fs.readdirSync(stateDir), ...fs.readdirSync(path.join(dir, "out"))].filter((f) => f.endsWith(".tmp"));
  assert.deepEqual(strays, []);
  assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/tmp")), [], "no temp dir left");
  // And the next run, with the directory writable again, builds the new pair.
  assert.equal(asUser("r.ts").status, 0);
  assert.equal(fs.readFileSync(path.join(dir, "out/t/x"), "utf8"), "new");
});

// A replaced output that is costly to unlink (a large file, a tree of many entries) is
// removed by a detached `rm` after the build: the old bytes must be gone soon after, the
// new ones in place, and nothing left in the temp or trash dirs; a read-only directory in
// the old tree must not stop it (as a user who is not root, rm alone cannot empty it).
it("replaced outputs that are slow to remove go in the background, and go", { skip: hasTestUser ? false : NEEDS_TEST_USER }, async () => {
  const dir = tempDir();
  fs.chmodSync(dir, 0o777);
  const recipe = (text: string) => `
import { file, fs } from ${JSON.stringify(modUrl)};
import { writeFileSync, mkdirSync, chmodSync } from "node:fs";
export const big = file("big.bin", async (out) => writeFileSync(out, Buffer.alloc(40 << 20, "${text}")));
export const many = fs("many", async (root) => {
  mkdirSync(root.dir + "/ro");
  for (let i = 0; i < 2500; i++) writeFileSync(root.dir + "/ro/f" + i, "${text}");
  chmodSync(root.dir + "/ro", 0o555);
});
export default [big, many];
`;
  write(dir, "r.ts", recipe("a"));
  const asUser = (...args: string[]) => crecipeAsTestUser(dir, args);
  let r = asUser("r.ts");
  assert.equal(r.status, 0, r.stderr);
  const oldBig = fs.statSync(path.join(dir, "out/big.bin")).ino;
  write(dir, "r.ts", recipe("b"));
  r = asUser("r.ts");
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(dir, "out/big.bin")).subarray(0, 1).toString(), "b");
  assert.equal(fs.readFileSync(path.join(dir, "out/many/ro/f2499"), "utf8"), "b");
  assert.notEqual(fs.statSync(path.join(dir, "out/big.bin")).ino, oldBig);
  const trash = path.join(dir, "out/.crecipe/trash");
  await waitFor(() => !fs.existsSync(trash) || fs.readdirSync(trash).length === 0);
  assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/tmp")), [], "no temp dir left");
  // Nothing of the old outputs remains anywhere in the out dir.
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && fs.statSync(p).size === 40 << 20 && fs.readFileSync(p).subarray(0, 1).toString() === "a") found.push(p);
    }
  };
  walk(path.join(dir, "out"));
  assert.deepEqual(found, []);
});
