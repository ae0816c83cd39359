/**
 * Output and state move together: when the state cannot be written (a read-only state
 * directory here; a full disk behaves alike), the run fails and leaves the old output
 * with the old state, and no temp file.
 */
import assert from "node:assert/strict";

import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { cli, modUrl, tempDir, write, hasTestUser, crecipeAsTestUser } from "../helpers.ts";

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
