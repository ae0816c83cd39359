/**
 * A large output file is written and hashed by a thread that takes ~75 ms to start; until
 * it runs, the building thread writes straight to the file (OutputFile.direct()) and the
 * thread reads those bytes back to hash them. Whatever was written which way, and whenever
 * the thread came up, the file holds every byte in order and the digest is theirs.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { OutputFile } from "../../lib/engine/io.ts";
import { THREAD_BYTES } from "../../lib/engine/threads.ts";
import { describeSystemError } from "../../lib/engine/errors.ts";
import { isRoot, tempDir, withSmallDisk } from "../helpers.ts";
import { pseudoRandom } from "../net/helpers.ts";

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const LARGE = THREAD_BYTES + 1; // an expected size that gets a hashing thread

/** Wait (blocking) until `ready()`, at most 20 s: the thread's start, for a test that needs it up. */
function until(ready: () => boolean): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (const end = Date.now() + 20_000; !ready(); ) {
    if (Date.now() > end) throw new Error("the hashing thread did not start in 20 s");
    Atomics.wait(cell, 0, 0, 5);
  }
}

/**
 * Write `direct` bytes through direct() (half by write(), half copied from a file), then
 * `after` through the ring; the thread started before or after the hand-over as `wait` says.
 */
function writeBoth(direct: Buffer, after: Buffer, wait: "before-direct" | "after-direct" | "no") {
  const dir = tempDir();
  const file = path.join(dir, "out");
  const source = path.join(dir, "source");
  const half = direct.length >> 1;
  fs.writeFileSync(source, direct.subarray(half));
  const out = new OutputFile(file, LARGE);
  const writer = out.direct();
  assert.ok(writer, "a large output offers a direct writer");
  if (wait === "before-direct") until(writer.started);
  writer.write(direct.subarray(0, half));
  const fd = fs.openSync(source, "r");
  assert.equal(writer.copyFrom(fd, direct.length - half), direct.length - half);
  fs.closeSync(fd);
  writer.end();
  if (wait === "after-direct") until(writer.started);
  for (let at = 0; at < after.length; at += 300_000) out.write(after.subarray(at, at + 300_000));
  const digest = out.close();
  const bytes = fs.readFileSync(file);
  return { digest, bytes, size: out.size };
}

describe("an output file written straight while its hashing thread starts", () => {
  const direct = pseudoRandom(5 << 20, "direct");
  const after = pseudoRandom(7 << 20, "after");
  const all = Buffer.concat([direct, after]);

  for (const wait of ["no", "before-direct", "after-direct"] as const) {
    it(`holds every byte in order and their digest (thread awaited: ${wait})`, () => {
      const { digest, bytes, size } = writeBoth(direct, after, wait);
      assert.equal(bytes.length, all.length);
      assert.ok(bytes.equals(all), "the file's bytes");
      assert.equal(size, all.length);
      assert.equal(digest, sha256(all), "the digest covers the bytes written straight");
    });
  }

  it("hashes the bytes written straight when nothing else follows", () => {
    const { digest, bytes } = writeBoth(direct, Buffer.alloc(0), "no");
    assert.ok(bytes.equals(direct));
    assert.equal(digest, sha256(direct));
  });

  it("is offered only before anything was written, and only with a hashing thread", () => {
    const dir = tempDir();
    const out = new OutputFile(path.join(dir, "a"), LARGE);
    out.write(Buffer.from("x"));
    assert.equal(out.direct(), undefined, "not after a write");
    out.close();
    const small = new OutputFile(path.join(dir, "b"), 100);
    assert.equal(small.direct(), undefined, "not for a small output, which this thread hashes");
    small.close();
  });

  it("can be abandoned after writing straight, without waiting on the thread", () => {
    const dir = tempDir();
    const out = new OutputFile(path.join(dir, "c"), LARGE);
    const writer = out.direct()!;
    writer.write(direct);
    writer.end();
    out.abandon();
    assert.equal(fs.statSync(path.join(dir, "c")).size, direct.length);
  });
});

describe("an output file on a full disk", { skip: isRoot ? false : "mounting a small tmpfs needs root" }, () => {
  it("is the write's system error, with its fix, when the hashing thread meets it", () => {
    withSmallDisk(tempDir(), "2m", (small) => {
      const out = new OutputFile(path.join(small, "out"), LARGE);
      until(() => out.direct()!.started()); // the thread writes what follows
      let error: unknown;
      try {
        for (let i = 0; i < 8; i++) out.write(pseudoRandom(1 << 20, `full${i}`));
        out.close();
      } catch (caught) {
        error = caught;
        out.abandon();
      }
      assert.ok(error, "a 2 MiB disk cannot take 8 MiB");
      const said = describeSystemError(error);
      assert.match(said?.message ?? String(error), /^no space left on the device: cannot write /);
      assert.match(said?.fix ?? "", /free some space/);
    });
  });
});
