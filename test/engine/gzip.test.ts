/**
 * gz's compressor: libdeflate in WebAssembly, one gzip member per content-defined piece.
 * What a user relies on: gunzip gives the input back, the bytes are the same however the
 * work was split (threads or not, any write sizes), an edit changes only the bytes around
 * it, and a bad level is a clear error.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import * as zlib from "node:zlib";
import { GzipWriter, gzipFile } from "../../lib/engine/gzip.ts";
import { GZ_CHUNKS, GzipMembers } from "../../lib/formats/deflate.ts";
import { crecipe, isRoot, modUrl, tempDir, withSmallDisk, write } from "../helpers.ts";
import { pseudoRandom } from "../net/helpers.ts";

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** Text-like bytes: compressible, but not runs (words from a small pseudo-random vocabulary). */
function textLike(size: number, seed: string): Buffer {
  const noise = pseudoRandom(size, seed);
  const words = ["usr", "lib", "share", "bin", "x86_64-linux-gnu", "libc.so.6", "\n", "etc", "doc", "0644 ", "root", "/"];
  const out = Buffer.alloc(size);
  let at = 0;
  for (let i = 0; at < size; i++) at += out.write(words[noise[i % size]! % words.length]!, at, "latin1");
  return out;
}

/** gzip `data` through a GzipWriter fed `step` bytes at a time; the file's bytes. */
async function viaWriter(data: Buffer, step: number, expectedSize: number, threads = true): Promise<Buffer> {
  const file = path.join(tempDir(), "out.gz");
  const saved = process.env.CRECIPE_THREADS;
  if (!threads) process.env.CRECIPE_THREADS = "0";
  try {
    const gz = GzipWriter.open(file, 6, expectedSize);
    for (let at = 0; at < data.length; at += step) await gz.write(data.subarray(at, at + step));
    const { size, sha256: digest } = await gz.close();
    const bytes = fs.readFileSync(file);
    assert.equal(size, bytes.length);
    assert.equal(digest, sha256(bytes), "the digest is of the bytes written");
    return bytes;
  } finally {
    if (saved === undefined) delete process.env.CRECIPE_THREADS;
    else process.env.CRECIPE_THREADS = saved;
  }
}

/** Bytes of `b` outside its longest common prefix and suffix with `a`. */
function changedBytes(a: Uint8Array, b: Uint8Array): number {
  let prefix = 0;
  while (prefix < a.length && prefix < b.length && a[prefix] === b[prefix]) prefix++;
  let suffix = 0;
  while (suffix < a.length - prefix && suffix < b.length - prefix && a[a.length - 1 - suffix] === b[b.length - 1 - suffix]) suffix++;
  return b.length - prefix - suffix;
}

describe("gz: libdeflate in WebAssembly, a gzip member per content-defined piece", () => {
  it("gunzip (the tool and zlib) gives back every kind of input, at levels 0, 1, 6 and 12", async () => {
    const inputs: Record<string, Buffer> = {
      empty: Buffer.alloc(0),
      "one byte": Buffer.from("x"),
      text: textLike(300_000, "t"),
      random: pseudoRandom(1_500_000, "r"),
      "zeros over a piece's largest size": Buffer.alloc(GZ_CHUNKS.max * 3 + 17),
    };
    const dir = tempDir();
    for (const [name, data] of Object.entries(inputs)) {
      for (const level of [0, 1, 6, 12]) {
        const input = path.join(dir, "in");
        fs.writeFileSync(input, data);
        await gzipFile(input, path.join(dir, "in.gz"), level);
        const gz = fs.readFileSync(path.join(dir, "in.gz"));
        const tool = spawnSync("gzip", ["-dc", path.join(dir, "in.gz")], { maxBuffer: 1 << 30 });
        assert.equal(tool.status, 0, `${name}, level ${level}: ${tool.stderr}`);
        assert.ok(tool.stdout.equals(data), `${name}, level ${level}: gzip -dc gives the input back`);
        assert.ok(zlib.gunzipSync(gz).equals(data), `${name}, level ${level}: zlib gives the input back`);
        if (name === "empty") assert.ok(gz.length > 0 && gz.length < 32, "an empty input is one empty member, not an empty file");
      }
    }
  });

  it("the same bytes on every machine: a golden digest", () => {
    const data = textLike(2 << 20, "golden");
    const sizes: number[] = [];
    for (let left = data.length; left > 0; left -= 100_000) sizes.push(Math.min(100_000, left));
    const gz = new GzipMembers(6).gzip(data, sizes);
    assert.equal(sha256(gz), "e45c0362494bf6c78a4b34436abd79e607e7e845158990ddf42a90ad48b761f3");
    assert.ok(zlib.gunzipSync(gz).equals(data));
  });

  it("the same pieces on every machine: a golden digest of a file through the writer", async () => {
    const gz = await viaWriter(Buffer.concat([textLike(3 << 20, "pieces"), pseudoRandom(1 << 20, "p")]), 1 << 20, 0);
    assert.equal(sha256(gz), "24f0bf810a20002fb4750190527876036a8797864f86c0bd3f024b476daef013");
  });

  it("threads or not, big writes or small: the same bytes", async () => {
    const data = Buffer.concat([textLike(12 << 20, "a"), pseudoRandom(3 << 20, "b"), Buffer.alloc(2 << 20), textLike(1 << 20, "c")]);
    const byThreads = await viaWriter(data, 1 << 20, data.length);
    assert.ok(zlib.gunzipSync(byThreads).equals(data));
    assert.ok((await viaWriter(data, 7 * 1024 + 3, data.length)).equals(byThreads), "small writes");
    assert.ok((await viaWriter(data, 4 << 20, 0)).equals(byThreads), "on this thread");
    assert.ok((await viaWriter(data, 1 << 20, data.length, false)).equals(byThreads), "CRECIPE_THREADS=0");
  });

  it("an edit changes only the bytes around it, as gzip --rsyncable's do", async () => {
    const before = textLike(8 << 20, "edit");
    const after = Buffer.from(before);
    after.write("an edit of a few bytes here", 4 << 20, "latin1");
    const inserted = Buffer.concat([before.subarray(0, 3 << 20), Buffer.from("inserted\n"), before.subarray(3 << 20)]);
    const gzBefore = await viaWriter(before, 1 << 20, 0);
    const edited = changedBytes(gzBefore, await viaWriter(after, 1 << 20, 0));
    const grown = changedBytes(gzBefore, await viaWriter(inserted, 1 << 20, 0));
    assert.ok(edited > 0 && edited < 2 * GZ_CHUNKS.max, `an overwrite changed ${edited} of ${gzBefore.length} bytes`);
    assert.ok(grown > 0 && grown < 2 * GZ_CHUNKS.max, `an insertion changed ${grown} of ${gzBefore.length} bytes`);
  });

  it("a level out of 0–12 is an error that names the target and the levels", () => {
    assert.throws(() => new GzipMembers(13), /gzip level 13: levels are whole numbers from 0 to 12/);
    const dir = tempDir();
    write(dir, "r.ts", `import { file, gz } from ${JSON.stringify(modUrl)};\nexport default gz(file("a.txt", async (out) => { (await import("node:fs")).writeFileSync(out, "a"); }), { level: 2.5 });\n`);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 2, r.stderr); // a mistake in the recipe, as crecipe's other ones
    assert.match(r.stderr, /gz\(a\.txt\): gzip level 2\.5: levels are whole numbers from 0 to 12 \(default 6\)/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  });

  it("a full disk is a clear error: no partial .gz, no temp left, no stack trace", { skip: isRoot ? false : "mounting a small tmpfs needs root" }, () => {
    const dir = tempDir();
    write(dir, "r.ts", `import { fs, gz, layer } from ${JSON.stringify(modUrl)};
import { randomBytes } from "node:crypto";
export const big = fs("big", async (root) => { await root.write("/random.bin", randomBytes(24 << 20)); });
export const bigLayer = layer(big);
export default gz(bigLayer);
`);
    withSmallDisk(dir, "60m", (small) => {
      const first = crecipe(dir, ["-o", small, "r.ts", "bigLayer"]);
      assert.equal(first.status, 0, first.stderr);
      const r = crecipe(dir, ["-o", small, "r.ts"]);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /FAILED big\.layer\.gz: .*(ENOSPC|no space)/i);
      assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
      assert.ok(!fs.existsSync(path.join(small, "big.layer.gz")), "no partial gz");
      assert.deepEqual(fs.readdirSync(path.join(small, ".crecipe/tmp")), [], "no temp left behind");
    });
  });
});
