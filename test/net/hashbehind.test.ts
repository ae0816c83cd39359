/**
 * HashBehind (net/hashbehind.ts): a file's sha256 on another thread, told how far the
 * file is final while it is written out of order; and a file shorter than it was told.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { HashBehind } from "../../lib/net/hashbehind.ts";
import { tempDir } from "../helpers.ts";
import { pseudoRandom } from "./helpers.ts";

it("hashes a file written out of order as it is told how far it is final: the file's sha256", async () => {
  const file = path.join(tempDir("crecipe-hashbehind-"), "file");
  const data = pseudoRandom(5 << 20, "behind");
  const fd = fs.openSync(file, "w");
  fs.ftruncateSync(fd, data.length);
  const hasher = HashBehind.start(file)!;
  assert.ok(hasher, "a thread started");
  // Pieces of 64 KiB written backwards within each MiB; the final prefix told after each MiB.
  for (let mib = 0; mib < 5; mib++) {
    for (let at = (mib + 1) << 20; at > mib << 20;) {
      at -= 65536;
      fs.writeSync(fd, data, at, 65536, at);
    }
    hasher.advance((mib + 1) << 20);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  fs.closeSync(fd);
  assert.equal(await hasher.digest(data.length), createHash("sha256").update(data).digest("hex"));
});

it("a file shorter than it was said to be: digest() fails and says why", async () => {
  const file = path.join(tempDir("crecipe-hashbehind-"), "short");
  fs.writeFileSync(file, pseudoRandom(100_000, "short"));
  const hasher = HashBehind.start(file)!;
  await assert.rejects(hasher.digest(200_000), /shorter than it was said to be/);
});
