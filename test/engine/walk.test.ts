/** walkSorted in-process (engine/walk.ts): the one order every list and archive uses. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { walkSorted, walkSortedAsync } from "../../lib/engine/walk.ts";
import { tempDir, write } from "../helpers.ts";

const root = tempDir();
for (const file of ["a/b", "a-c", "a.d", "b/c/d", "é", "Z"]) write(root, file, "");
fs.mkdirSync(path.join(root, "empty"));
fs.symlinkSync("a", path.join(root, "link"));
fs.writeFileSync(Buffer.concat([Buffer.from(root + "/"), Buffer.from([0xff])]), ""); // not UTF-8
/** Every path in bytewise order of full paths: "a/b" after "a-c" and "a.d", since "/" sorts after "-" and ".". */
const EXPECTED = [..."Z a a-c a.d a/b b b/c b/c/d empty link é".split(" ").map((p) => Buffer.from(p)), Buffer.from([0xff])];

it("walkSorted visits every path once, in bytewise order of full paths, with its lstat", () => {
  const seen: string[] = [];
  walkSorted(root, (rel, full, st) => {
    seen.push(rel.toString("hex"));
    assert.equal(Buffer.compare(full, Buffer.concat([Buffer.from(root + "/"), rel])), 0);
    if (rel.toString() === "link") assert.ok(st.isSymbolicLink());
  });
  assert.deepEqual(seen, EXPECTED.map((p) => p.toString("hex")));
});

it("walkSortedAsync visits the same paths in the same order, breathing after each", async () => {
  const sync: string[] = [];
  walkSorted(root, (rel) => sync.push(rel.toString("hex")));
  const async: string[] = [];
  let breaths = 0;
  await walkSortedAsync(root, (rel) => async.push(rel.toString("hex")), () => void breaths++);
  assert.deepEqual(async, sync);
  assert.equal(breaths, sync.length);
});
