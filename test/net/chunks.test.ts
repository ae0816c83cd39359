/**
 * The chunk index (formats/chunks.ts): the split checked against a plain reading of its
 * spec, a golden example byte for byte, determinism (however the bytes are fed, and as a
 * crecipe target), what a damaged index gets, and the byte ranges parser.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import * as zlib from "node:zlib";
import { parseRange } from "../../lib/formats/byteranges.ts";
import { CHUNK_PARAMS, type ChunkParams, chunkIndex, chunkSizes, Chunker, crc32, crc32Slow, decodeChunkIndex, encodeChunkIndex, fastCrc32 } from "../../lib/formats/chunks.ts";
import { expectedOf, SeedSplitter } from "../../lib/net/seedscan.ts";
import { crecipe, repo, tempDir } from "../helpers.ts";
import { indexRecipe, pseudoRandom } from "./helpers.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest();

/** The split as the header of formats/chunks.ts states it, one chunk at a time, nothing clever. */
function referenceSizes(data: Buffer, { min, normal, max }: ChunkParams): number[] {
  const gear = Array.from({ length: 256 }, (_, i) => sha(Buffer.concat([Buffer.from("crecipe gear "), Buffer.of(i)])).readUInt32BE(0));
  const bits = Math.log2(normal);
  const top = (n: number) => (2 ** 32 - 2 ** (32 - n)); // the top n bits of a 32-bit word
  const sizes: number[] = [];
  for (let start = 0; start < data.length;) {
    let length = 0;
    let hash = 0;
    while (start + length < data.length) {
      const byte = data[start + length];
      length++;
      if (length <= min) continue;
      hash = (hash * 2 + gear[byte]) % 2 ** 32;
      const mask = length - 1 < normal ? top(bits + 2) : top(bits - 2);
      if ((hash & mask) >>> 0 === 0 || length === max) break;
    }
    sizes.push(length);
    start += length;
  }
  return sizes;
}

const SMALL: ChunkParams = { min: 64, normal: 256, max: 1024 };

describe("the chunk index format", () => {
  it("the split is the one its spec describes, fed in blocks of any size", () => {
    const data = pseudoRandom(300_000, "split");
    for (const params of [SMALL, { min: 512, normal: 2048, max: 8192 }]) {
      const reference = referenceSizes(data, params);
      assert.deepEqual(chunkSizes(data, params), reference);
      for (const block of [1, 7, 4096, 65537]) {
        const chunker = new Chunker(params);
        const ends: number[] = [];
        for (let at = 0; at < data.length; at += block) ends.push(...chunker.push(data.subarray(at, at + block)).map((e) => at + e));
        const sizes = ends.map((e, i) => e - (i ? ends[i - 1] : 0));
        const last = chunker.finish();
        if (last) sizes.push(last);
        assert.deepEqual(sizes, reference, `fed ${block} bytes at a time`);
      }
    }
    const big = pseudoRandom(3 << 20, "default params");
    const sizes = chunkSizes(big);
    assert.deepEqual(sizes, referenceSizes(big, CHUNK_PARAMS));
    assert.ok(sizes.slice(0, -1).every((s) => s > CHUNK_PARAMS.min && s <= CHUNK_PARAMS.max));
    const average = big.length / sizes.length;
    assert.ok(average > 50_000 && average < 100_000, `average chunk ${average}`);
  });

  it("golden: 3000 bytes, min 64 / normal 256 / max 1024, field by field and byte for byte", () => {
    const data = pseudoRandom(3000, "golden");
    const index = chunkIndex(data, SMALL);
    // The cut points, pinned: a change to the split changes them.
    assert.deepEqual(index.chunks.map((c) => c.size), GOLDEN_SIZES);
    const bytes = encodeChunkIndex(index);
    const n = GOLDEN_SIZES.length;
    const expected: Buffer[] = [
      Buffer.from("CRCHUNKS"), Buffer.from([2, 1, 0, 0]),
      u32(64), u32(256), u32(1024), Buffer.from("0000000000000bb8", "hex"), sha(data), u32(n),
    ];
    let offset = 0;
    for (const size of GOLDEN_SIZES) {
      const chunk = data.subarray(offset, offset + size);
      expected.push(u32(size), u32(zlib.crc32(chunk)), sha(chunk));
      offset += size;
    }
    expected.push(sha(Buffer.concat(expected)));
    expected.push(Buffer.from("CRBLOCKS"), u32(4096), u32(8));
    offset = 0;
    for (const size of GOLDEN_SIZES) { // one 4 KiB block each way: the chunk itself, twice
      const block = sha(data.subarray(offset, offset + size)).subarray(0, 8);
      expected.push(block, block);
      offset += size;
    }
    assert.equal(bytes.toString("hex"), Buffer.concat(expected).toString("hex"));
    assert.equal(bytes.length, 68 + 40 * n + 32 + 16 + 16 * n);
    assert.equal(sha(bytes).toString("hex"), GOLDEN_SHA256);
    const decoded = decodeChunkIndex(bytes);
    assert.deepEqual({ ...decoded, blocks: undefined }, { ...index, blocks: undefined });
    assert.deepEqual(decoded.blocks, index.blocks);
    assert.deepEqual(decodeChunkIndex(bytes.subarray(0, 68 + 40 * n + 32)).chunks, index.chunks, "the main part alone reads");
    // Version 1, what crecipe wrote before the CRC-32s: the same index without them, byte for
    // byte as then (its golden sha256), still read.
    const v1 = encodeChunkIndex({ ...index, chunks: index.chunks.map(({ crc: _, ...c }) => c) });
    assert.equal(v1.length, 68 + 36 * n + 32 + 16 + 16 * n);
    assert.equal(sha(v1).toString("hex"), GOLDEN_SHA256_V1);
    assert.deepEqual(decodeChunkIndex(v1).chunks, index.chunks.map(({ crc: _, ...c }) => c));
  });

  it("CRC-32 is gzip's, by zlib or by the table where zlib has none, whole or continued", () => {
    for (const length of [0, 1, 7, 4096, 100_003]) {
      const data = pseudoRandom(length, `crc ${length}`);
      const whole = zlib.crc32(data);
      assert.equal(crc32(data), whole);
      assert.equal(crc32Slow(data), whole);
      const cut = length >> 1;
      assert.equal(crc32Slow(data.subarray(cut), crc32Slow(data.subarray(0, cut))), whole);
      assert.equal(crc32(data.subarray(cut), crc32(data.subarray(0, cut))), whole);
    }
    assert.equal(crc32Slow(Buffer.from("123456789")), 0xcbf43926, "the standard check value");
    assert.ok(fastCrc32(), "zlib's CRC-32 passes the check and is used (Node ≥ 20.15)");
    assert.equal(crc32(Buffer.alloc(0), 0xdeadbeef), 0xdeadbeef, "an empty piece continues the value (zlib's alone gives 0)");
    assert.equal(crc32Slow(Buffer.alloc(0), 0xdeadbeef), 0xdeadbeef);
  });

  it("the split is the same where WebAssembly is not there (node --jitless: the rolling hash in JavaScript)", () => {
    const data = pseudoRandom(200_000, "jitless");
    const script = `import { chunkSizes } from ${JSON.stringify(path.join(repo, "lib/formats/chunks.ts"))};
import { createHash, createCipheriv } from "node:crypto";
const key = createHash("sha256").update("jitless").digest().subarray(0, 16);
const data = createCipheriv("aes-128-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(200000));
console.log(JSON.stringify({ wasm: typeof WebAssembly, sizes: chunkSizes(data, { min: 64, normal: 256, max: 1024 }) }));`;
    const r = spawnSync(process.execPath, ["--jitless", "--import", "tsx", "--input-type=module", "-e", script], { cwd: repo, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.wasm, "undefined", "no WebAssembly under --jitless");
    assert.deepEqual(out.sizes, chunkSizes(data, SMALL));
    assert.deepEqual(out.sizes, referenceSizes(data, SMALL));
  });

  it("deterministic, and an edit or an insertion changes only the chunks around it", () => {
    const data = pseudoRandom(2 << 20, "edits");
    assert.ok(encodeChunkIndex(chunkIndex(data)).equals(encodeChunkIndex(chunkIndex(Buffer.from(data)))));
    const inserted = Buffer.concat([data.subarray(0, 1_000_000), Buffer.from("a few new bytes"), data.subarray(1_000_000)]);
    const before = new Set(chunkIndex(data).chunks.map((c) => c.digest));
    const after = chunkIndex(inserted).chunks;
    const changed = after.filter((c) => !before.has(c.digest));
    assert.ok(changed.length >= 1 && changed.length <= 3, `${changed.length} chunks changed`);
    assert.ok(changed.every((c) => c.offset < 1_000_000 + 600_000 && c.offset + c.size > 1_000_000 - 300_000));
  });

  // fetch splits a seed by looking first where the new file's chunks should be (SeedSplitter):
  // it must find exactly the chunks the seed's own split makes, whatever the two files share.
  it("a seed split by looking ahead gives the seed's own chunks: edits, moves, repeats, other files, any blocks", () => {
    let r = 7;
    const rnd = (n: number) => ((r = (r * 1103515245 + 12345) >>> 0) % n);
    const P: ChunkParams = { min: 2048, normal: 8192, max: 32768 };
    const chunksOf = (data: Buffer) => {
      const ends: number[] = [];
      const digests: string[] = [];
      const crcs: number[] = [];
      let at = 0;
      for (const size of chunkSizes(data, P)) {
        digests.push(sha(data.subarray(at, at + size)).toString("hex"));
        crcs.push(crc32(data.subarray(at, at + size)));
        ends.push((at += size));
      }
      return { ends, digests, crcs };
    };
    const edit = (b: Buffer, salt: number) => {
      let out = b;
      for (let e = rnd(4); e > 0; e--) {
        const at = rnd(out.length);
        const kind = rnd(3);
        if (kind === 0) out = Buffer.concat([out.subarray(0, at), pseudoRandom(rnd(20_000), `in ${salt} ${e}`), out.subarray(at)]);
        else if (kind === 1) out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + rnd(20_000)))]);
        else (out = Buffer.from(out))[at] ^= 1;
      }
      if (rnd(5) === 0) out = Buffer.concat([out.subarray(rnd(out.length)), out.subarray(0, rnd(out.length))]); // moved
      if (rnd(7) === 0) out = Buffer.concat([out, out.subarray(0, rnd(out.length))]); // repeated
      return out;
    };
    const looked: number[] = []; // of the seeds edited from the new file itself: how much was found by looking ahead
    for (let trial = 0; trial < 300; trial++) {
      const base = pseudoRandom(50_000 + rnd(250_000), `base ${trial}`);
      const next = trial % 10 === 0 ? base : edit(base, trial);
      const seed = trial % 6 === 5 ? pseudoRandom(rnd(100_000), `other ${trial}`) : edit(base, -trial);
      const target = chunksOf(next);
      // Odd trials look ahead by CRC-32 (the index has them), even ones by sha256.
      const withCrc = trial % 2 === 1;
      const splitter = new SeedSplitter(P, expectedOf(target.ends.map((e, i) => ({ size: e - (i ? target.ends[i - 1] : 0), digest: target.digests[i], crc: withCrc ? target.crcs[i] : undefined }))));
      const got = { ends: [] as number[], digests: [] as string[] };
      const add = (o: { ends: number[]; digests: string[] }) => (got.ends.push(...o.ends), got.digests.push(...o.digests));
      for (let at = 0; at < seed.length;) {
        const n = 1 + rnd(trial % 3 === 0 ? 300 : 70_000);
        add(splitter.push(Buffer.from(seed.subarray(at, (at += n)))));
      }
      add(splitter.finish());
      const own = chunksOf(seed);
      assert.deepEqual(got, { ends: own.ends, digests: own.digests }, `trial ${trial}`);
      if (next === base && seed.length > 100_000 && trial % 6 !== 5) looked.push(splitter.looked / seed.length);
    }
    looked.sort((a, b) => a - b);
    assert.ok(looked.length >= 10 && looked[looked.length >> 1] > 0.5, `found by looking ahead: ${looked.map((x) => x.toFixed(2))}`);
  });

  it("a seed that ends while a chunk is looked for, after a found one, is cut where the Chunker cuts it", () => {
    const P: ChunkParams = { min: 256, normal: 1024, max: 4096 };
    // New-file chunks A, B, C…, and a seed of B then X: shorter than A (so all of it is first
    // looked at as A), X shorter than C but holding a cut of its own.
    for (let i = 0; ; i++) {
      assert.ok(i < 5000, "no such pair found");
      const next = pseudoRandom(20_000, `finish ${i}`);
      const [a, b, c] = chunkSizes(next, P);
      const x = pseudoRandom(c - 1, `tail ${i}`);
      const cuts = chunkSizes(x, P);
      if (b + x.length >= a || cuts.length < 2) continue;
      const seed = Buffer.concat([next.subarray(a, a + b), x]);
      let at = 0;
      const expected = expectedOf(chunkSizes(next, P).map((size) => ({ size, digest: sha(next.subarray(at, (at += size))).toString("hex") })));
      const splitter = new SeedSplitter(P, expected);
      const first = splitter.push(seed);
      const last = splitter.finish();
      assert.deepEqual([...first.ends, ...last.ends], chunkSizes(seed, P).map((size, j, all) => all.slice(0, j + 1).reduce((n, m) => n + m, 0)));
      return;
    }
  });

  it("a seed split against a file of more than 2²¹ chunks (shorter digest keys) finds the same chunks", () => {
    const P: ChunkParams = { min: 2048, normal: 8192, max: 32768 };
    const seed = pseudoRandom(400_000, "big index seed");
    const next = Buffer.concat([seed.subarray(0, 150_000), Buffer.from("an edit"), seed.subarray(150_000)]);
    const chunksOf = (data: Buffer) => {
      const list: { size: number; digest: string }[] = [];
      let at = 0;
      for (const size of chunkSizes(data, P)) list.push({ size, digest: sha(data.subarray(at, (at += size))).toString("hex") });
      return list;
    };
    // The new file's chunks first, then two million others (a huge file's worth of digests).
    const filler = pseudoRandom(32 * 2_100_000, "other digests");
    const many = [...chunksOf(next), ...Array.from({ length: 2_100_000 }, (_, i) => ({ size: 8192, digest: filler.toString("hex", 32 * i, 32 * i + 32) }))];
    const splitter = new SeedSplitter(P, expectedOf(many));
    const got = { ...splitter.push(seed) };
    const last = splitter.finish();
    let at = 0;
    const want = chunksOf(seed).map((c) => ((at += c.size), { end: at, digest: c.digest }));
    assert.deepEqual([...got.ends, ...last.ends], want.map((c) => c.end));
    assert.deepEqual([...got.digests, ...last.digests], want.map((c) => c.digest));
    // Found by looking ahead, past the edit too (by the shorter keys), not split: all but a chunk or two.
    assert.ok(splitter.looked > seed.length - 4 * 32768, `${splitter.looked} of ${seed.length} bytes found by looking ahead`);
  });

  it("a damaged, truncated or unknown index is refused with a reason", () => {
    const bytes = encodeChunkIndex(chunkIndex(pseudoRandom(100_000, "damage")));
    const flipped = Buffer.from(bytes);
    flipped[80] ^= 1;
    assert.throws(() => decodeChunkIndex(flipped), /checksum does not match/);
    assert.throws(() => decodeChunkIndex(bytes.subarray(0, 100)), /truncated/);
    assert.throws(() => decodeChunkIndex(Buffer.from("not an index at all, not at all, no: not an index at all, really not")), /no CRCHUNKS magic/);
    const future = Buffer.from(bytes);
    future[8] = 3;
    assert.throws(() => decodeChunkIndex(future), /version 3.*reads versions 1 and 2/);
  });

  it("chunks(target) writes NAME.chunks, the same bytes in two builds", () => {
    const dir = tempDir("crecipe-chunks-target-");
    fs.writeFileSync(path.join(dir, "layer.src"), pseudoRandom(1 << 20, "target"));
    const copies = ["a", "b"].map((name) => {
      const sub = path.join(dir, name);
      fs.mkdirSync(sub);
      const run = crecipe(sub, ["-q", indexRecipe(sub, { "app.layer": path.join(dir, "layer.src") })]);
      assert.equal(run.status, 0, run.stderr);
      return fs.readFileSync(path.join(sub, "out/app.layer.chunks"));
    });
    assert.ok(copies[0].equals(copies[1]));
    const index = decodeChunkIndex(copies[0]);
    assert.equal(index.digest, sha(fs.readFileSync(path.join(dir, "layer.src"))).toString("hex"));
    assert.ok(index.blocks, "with its block section");
  });
});

describe("byte ranges", () => {
  it("parses Range as RFC 9110 says", () => {
    assert.deepEqual(parseRange("bytes=0-99", 1000), [{ start: 0, end: 99 }]);
    assert.deepEqual(parseRange("bytes=0-99, 990-", 1000), [{ start: 0, end: 99 }, { start: 990, end: 999 }]);
    assert.deepEqual(parseRange("bytes=-10", 1000), [{ start: 990, end: 999 }]);
    assert.deepEqual(parseRange("bytes=-2000", 1000), [{ start: 0, end: 999 }]);
    assert.deepEqual(parseRange("bytes=500-5000", 1000), [{ start: 500, end: 999 }]);
    assert.equal(parseRange("bytes=1000-", 1000), "unsatisfiable");
    assert.equal(parseRange("bytes=-0", 1000), "unsatisfiable");
    assert.equal(parseRange("bytes=5-1", 1000), undefined);
    assert.equal(parseRange("lines=1-2", 1000), undefined);
    assert.equal(parseRange("bytes=a-b", 1000), undefined);
  });
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

const GOLDEN_SIZES = [426, 320, 270, 354, 616, 288, 372, 284, 70];
const GOLDEN_SHA256 = "f8cfece4c6c03adfb8f1368a24b585e0380f2d4fc220e1b63012ff5e61b47838";
const GOLDEN_SHA256_V1 = "0e134f9fdea53eb6c21f7a4d4f0454965d4ff432b398f78227ab702f5861d27c";
