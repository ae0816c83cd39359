/**
 * crecipe fetch against crecipe serve, real processes and files: a 200 MB layer with one
 * file changed, every fault the issue lists (through a misbehaving proxy), resume after
 * kill -9, and the errors a user sees.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { chunkIndex, crc32, decodeChunkIndex, encodeChunkIndex } from "../../lib/formats/chunks.ts";
import { indexFile } from "../../lib/targets/chunks.ts";
import { unpackBits } from "../../lib/net/partial.ts";
import { cli, crecipe, processGone, tempDir, waitFor } from "../helpers.ts";
import { indexRecipe, pseudoRandom, runFetch, sha256File, startFetch, startProxy, startServe, writeLayer } from "./helpers.ts";

/** One line of stderr is the summary, always. */
const SUMMARY = /^crecipe: fetched .* \(.*, sha256 [0-9a-f]{12}\): .* reused from seeds, .* downloaded \(index .*, \d+ requests.*\) in [\d.]+ s$/m;

describe("fetch a 200 MB layer with one 100 KB file changed", () => {
  const dir = tempDir("crecipe-fetch-big-");
  const changed = 101_000; // file 1000 gets new contents, 1000 bytes longer: everything after it shifts
  let server: Awaited<ReturnType<typeof startServe>>;
  before(async () => {
    writeLayer(path.join(dir, "old.layer"), 2000, 100_000);
    writeLayer(path.join(dir, "new.layer"), 2000, 100_000, { 1000: { size: changed, seed: "changed" } });
    const built = crecipe(dir, ["-q", indexRecipe(dir, { "app.layer": path.join(dir, "new.layer"), "old.layer": path.join(dir, "old.layer") })]);
    assert.equal(built.status, 0, built.stderr);
    server = await startServe(path.join(dir, "out"));
  });
  after(() => server?.stop());

  it("downloads at most twice the changed bytes plus the index, and the file is the new one", async () => {
    const run = await runFetch(dir, [`${server.url}app.layer`, "--seed", "old.layer", "-o", "got.layer"]);
    assert.equal(run.code, 0, run.err);
    assert.match(run.err, SUMMARY);
    const report = run.report!;
    // The index: its main part (36 bytes a chunk) and the block hints next to the change, not its whole block section.
    const indexBytes = report.indexBytes as number;
    assert.ok(indexBytes > 0 && indexBytes < fs.statSync(path.join(dir, "out/app.layer.chunks")).size / 4, `index ${indexBytes} bytes`);
    assert.ok((report.downloaded as number) <= 2 * changed + indexBytes, `downloaded ${report.downloaded} > 2 × ${changed} + ${indexBytes}`);
    assert.ok((report.fetched as number) >= changed, "the changed file itself came over the network");
    assert.equal(report.reused as number + (report.fetched as number), fs.statSync(path.join(dir, "new.layer")).size);
    assert.equal(sha256File(path.join(dir, "got.layer")), sha256File(path.join(dir, "new.layer")));
    assert.equal(report.digest, sha256File(path.join(dir, "new.layer")));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith("got.layer")).sort(), ["got.layer", "got.layer.chunks"], "no partial files left, the index kept");
    const kept = decodeChunkIndex(fs.readFileSync(path.join(dir, "got.layer.chunks")));
    const served = decodeChunkIndex(fs.readFileSync(path.join(dir, "out/app.layer.chunks")));
    assert.deepEqual([kept.size, kept.digest, kept.chunks], [served.size, served.digest, served.chunks], "the kept index is the server's (its main part)");
    // The seed's size said about how long the index's main part is: it came in one request.
    const firstIndexRead = server.log().split("\n").find((l) => l.startsWith("GET /app.layer.chunks "))!;
    assert.ok(Number(firstIndexRead.split(" ").at(-1)) >= 68 + 40 * served.chunks.length + 32, firstIndexRead);
    // What the server sent agrees: the index, a HEAD, and ranges of the changed region only.
    const sent = server.log().split("\n").filter((l) => l.startsWith("GET /app.layer ")).reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
    assert.ok(sent <= 2 * changed + 4096, `the server sent ${sent} bytes of the layer`);
  });

  it("a version 1 index (no CRC-32s: each chunk looked for is hashed) gives the same file from the same seed", async () => {
    const v2 = decodeChunkIndex(fs.readFileSync(path.join(dir, "out/app.layer.chunks")));
    assert.ok(v2.chunks.every((c) => typeof c.crc === "number"), "chunks(t) writes version 2");
    const v1 = { ...v2, chunks: v2.chunks.map(({ crc: _, ...c }) => c) };
    fs.mkdirSync(path.join(dir, "v1"), { recursive: true });
    fs.copyFileSync(path.join(dir, "out/app.layer"), path.join(dir, "v1/app.layer"));
    fs.writeFileSync(path.join(dir, "v1/app.layer.chunks"), encodeChunkIndex(v1));
    assert.equal(fs.readFileSync(path.join(dir, "v1/app.layer.chunks"))[8], 1);
    const old = await startServe(path.join(dir, "v1"));
    try {
      const latest = await runFetch(dir, [`${server.url}app.layer`, "--seed", "old.layer", "-o", "latest.layer", "--no-index"]);
      const first = await runFetch(dir, [`${old.url}app.layer`, "--seed", "old.layer", "-o", "first.layer", "--no-index"]);
      assert.equal(first.code, 0, first.err);
      assert.equal(sha256File(path.join(dir, "first.layer")), sha256File(path.join(dir, "new.layer")));
      for (const key of ["reused", "fetched"]) assert.equal(first.report![key], latest.report![key], key);
    } finally {
      await old.stop();
    }
  });

  it("--no-index keeps no FILE.chunks; a stale FILE.chunks beside the old FILE goes", async () => {
    fs.writeFileSync(path.join(dir, "bare.layer.chunks"), "stale");
    const run = await runFetch(dir, [`${server.url}app.layer`, "--seed", "old.layer", "-o", "bare.layer", "--no-index"]);
    assert.equal(run.code, 0, run.err);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith("bare.layer")), ["bare.layer"]);
  });

  it("uses the seed's own index beside it, and a seed that is the output itself", async () => {
    fs.copyFileSync(path.join(dir, "out/old.layer"), path.join(dir, "inplace.layer"));
    fs.copyFileSync(path.join(dir, "out/old.layer.chunks"), path.join(dir, "inplace.layer.chunks"));
    const run = await runFetch(dir, [`${server.url}app.layer`, "--seed", "inplace.layer", "-o", "inplace.layer"]);
    assert.equal(run.code, 0, run.err);
    assert.equal(sha256File(path.join(dir, "inplace.layer")), sha256File(path.join(dir, "new.layer")));
    assert.ok((run.report!.fetched as number) <= 2 * changed);
  });

  it("two seeds, one with its own index and one without: each gives what it holds", async () => {
    const old = fs.readFileSync(path.join(dir, "old.layer"));
    const half = Math.floor(old.length / 2);
    fs.writeFileSync(path.join(dir, "front.layer"), old.subarray(0, half));
    fs.writeFileSync(path.join(dir, "front.layer.chunks"), encodeChunkIndex(chunkIndex(old.subarray(0, half))));
    fs.writeFileSync(path.join(dir, "back.layer"), old.subarray(half));
    const run = await runFetch(dir, [`${server.url}app.layer`, "--seed", "front.layer", "--seed", "back.layer", "-o", "two.layer", "--no-index"]);
    assert.equal(run.code, 0, run.err);
    assert.equal(sha256File(path.join(dir, "two.layer")), sha256File(path.join(dir, "new.layer")));
    const fetched = run.report!.fetched as number;
    // The changed file, and at most the chunks that straddle the cut between the two seeds.
    assert.ok(fetched >= changed && fetched <= 2 * changed + 4 * (256 << 10), `${fetched} bytes fetched`);
    assert.equal(run.report!.reused as number + fetched, fs.statSync(path.join(dir, "new.layer")).size);
  });

  // A seed edited after its index was written: with its mtime newer than the index, each of
  // its chunks is hashed before use; with the mtime set back (the index looks current), the
  // whole file's hash catches the edit, and the chunks that differ are found and downloaded.
  for (const setBack of [false, true]) {
    it(`a seed edited in place after its index was written${setBack ? ", its mtime set back" : ""}: the new file all the same`, async () => {
      const seed = path.join(dir, `edited${setBack}.layer`);
      fs.copyFileSync(path.join(dir, "out/old.layer"), seed);
      fs.copyFileSync(path.join(dir, "out/old.layer.chunks"), `${seed}.chunks`);
      const index = decodeChunkIndex(fs.readFileSync(`${seed}.chunks`));
      const fd = fs.openSync(seed, "r+");
      fs.writeSync(fd, Buffer.from("edited by hand"), 0, 14, index.chunks[3].offset + 100); // early in the file, far from the change
      fs.closeSync(fd);
      const old = new Date(Date.now() - 3600_000);
      if (setBack) fs.utimesSync(seed, old, old);
      else fs.utimesSync(`${seed}.chunks`, old, old);
      const out = `got-edited${setBack}.layer`;
      const run = await runFetch(dir, [`${server.url}app.layer`, "--seed", path.basename(seed), "-o", out]);
      assert.equal(run.code, 0, run.err);
      assert.equal(sha256File(path.join(dir, out)), sha256File(path.join(dir, "new.layer")));
      const fetched = run.report!.fetched as number;
      assert.ok(fetched >= changed + index.chunks[3].size, `the edited chunk was downloaded too (${fetched} bytes fetched)`);
      assert.ok(fetched <= 2 * changed + 2 * index.params.max, `${fetched} bytes fetched`);
      assert.equal(run.report!.reused as number + fetched, fs.statSync(path.join(dir, "new.layer")).size);
    });
  }
});

/** A 12 MB file and a seed with a byte changed every 256 KB: about 48 chunks to download, in more than one request. */
function smallPair(dir: string) {
  const v1 = pseudoRandom(12 << 20, "small v1");
  fs.writeFileSync(path.join(dir, "small.v1"), v1);
  const seed = Buffer.from(v1);
  for (let at = 100_000; at < seed.length; at += 256 * 1024) seed[at] ^= 0xff;
  fs.writeFileSync(path.join(dir, "seed.bin"), seed);
  const v2 = Buffer.from(v1);
  pseudoRandom(300_000, "small v2").copy(v2, 5 << 20);
  fs.writeFileSync(path.join(dir, "small.v2"), v2);
  return { v1, v2 };
}

describe("faults: the server misbehaves", () => {
  const dir = tempDir("crecipe-fetch-faults-");
  let server: Awaited<ReturnType<typeof startServe>>;
  let recipe: string;
  const v1sha = () => sha256File(path.join(dir, "small.v1"));
  before(async () => {
    smallPair(dir);
    fs.copyFileSync(path.join(dir, "small.v1"), path.join(dir, "small.src"));
    recipe = indexRecipe(dir, { "small.bin": path.join(dir, "small.src"), "stale.bin": path.join(dir, "small.v1") });
    const built = crecipe(dir, ["-q", recipe]);
    assert.equal(built.status, 0, built.stderr);
    // stale.bin: the file changed on the server, its index did not (same size, other bytes).
    fs.copyFileSync(path.join(dir, "small.v2"), path.join(dir, "out/stale.bin"));
    server = await startServe(path.join(dir, "out"), ["-q"]);
  });
  after(() => server?.stop());

  const fetchVia = (proxyUrl: string, out: string, name = "small.bin") => runFetch(dir, [`${proxyUrl}${name}`, "--seed", "seed.bin", "-o", out]);

  it("a connection dropped in the middle of the body: tried again, only what is missing", async () => {
    const proxy = await startProxy(server.port, { body: (data, sent, n) => (n < 2 && sent + data.length > 20_000 ? { cut: Math.max(0, 20_000 - sent) } : data) });
    try {
      const run = await fetchVia(proxy.url, "dropped.bin");
      assert.equal(run.code, 0, run.err);
      assert.match(run.err, /\d+ retried\)/);
      assert.ok((run.report!.retries as number) >= 1);
      assert.equal(sha256File(path.join(dir, "dropped.bin")), v1sha());
    } finally {
      await proxy.close();
    }
  });

  it("wrong bytes: refused, tried again; a server that always sends them is an error and no output", async () => {
    const flip = (data: Buffer) => {
      const copy = Buffer.from(data);
      copy[copy.length >> 1] ^= 1;
      return copy;
    };
    const once = await startProxy(server.port, { body: (data, _sent, n) => (n === 0 ? flip(data) : data) });
    try {
      const run = await fetchVia(once.url, "flipped.bin");
      assert.equal(run.code, 0, run.err);
      assert.ok((run.report!.retries as number) >= 1);
      assert.equal(sha256File(path.join(dir, "flipped.bin")), v1sha());
    } finally {
      await once.close();
    }
    const always = await startProxy(server.port, { body: flip });
    try {
      const run = await fetchVia(always.url, "never.bin");
      assert.equal(run.code, 1);
      assert.match(run.err, /^crecipe: error: http:\/\/127\.0\.0\.1:\d+\/small\.bin: wrong bytes for the chunk at offset \d+ \(5 tries in a row\)\n  fix: the file on the server does not match its index .*small\.bin\.chunks: rebuild the index/m);
      assert.ok(!fs.existsSync(path.join(dir, "never.bin")), "no output");
      assert.ok(fs.existsSync(path.join(dir, "never.bin.part")), "the verified chunks are kept");
    } finally {
      await always.close();
    }
  });

  it("a file changed on the server but not its index: the error says so", async () => {
    const run = await runFetch(dir, [`${server.url}stale.bin`, "--seed", "seed.bin", "-o", "stale.out"]);
    assert.equal(run.code, 1);
    assert.match(run.err, /wrong bytes .*\n  fix: the file on the server does not match its index/);
    assert.ok(!fs.existsSync(path.join(dir, "stale.out")));
  });

  it("a server that ignores Range: its whole answer is used, once", async () => {
    const proxy = await startProxy(server.port, {
      headers: (headers) => {
        const { range: _range, "if-range": _ifRange, ...rest } = headers;
        return rest;
      },
    });
    try {
      const run = await fetchVia(proxy.url, "whole.bin");
      assert.equal(run.code, 0, run.err);
      assert.equal(proxy.gets(), 1, `one GET of the file: ${run.err}`);
      assert.equal(run.report!.requests, 1);
      assert.ok((run.report!.downloaded as number) >= 12 << 20);
      assert.equal(sha256File(path.join(dir, "whole.bin")), v1sha());
    } finally {
      await proxy.close();
    }
  });

  it("the file changes on the server during the download: starts over on the new index, ends with the new file", async () => {
    let swapped = false;
    const proxy = await startProxy(server.port, {
      after: (n) => {
        if (n !== 0 || swapped) return;
        swapped = true; // a new release is published between two requests of the download
        fs.copyFileSync(path.join(dir, "small.v2"), path.join(dir, "small.src"));
        const r = spawnSync(process.execPath, [cli, "-q", recipe], { cwd: dir, encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
      },
    });
    try {
      const run = await fetchVia(proxy.url, "moving.bin");
      assert.equal(run.code, 0, run.err);
      assert.ok(swapped);
      assert.equal(sha256File(path.join(dir, "moving.bin")), sha256File(path.join(dir, "small.v2")));
      assert.ok((run.report!.resumed as number) > 0, "what the first version had in common was kept");
    } finally {
      await proxy.close();
      fs.copyFileSync(path.join(dir, "small.v1"), path.join(dir, "small.src"));
      assert.equal(crecipe(dir, ["-q", recipe]).status, 0);
    }
  });

  it("a server that keeps failing: a clear error after a few tries, exit 1, the partial file kept and used next time", async () => {
    const proxy = await startProxy(server.port, { body: () => "drop" });
    try {
      const run = await fetchVia(proxy.url, "failing.bin");
      assert.equal(run.code, 1);
      assert.match(run.err, /^crecipe: error: http:\/\/127\.0\.0\.1:\d+\/small\.bin: (the connection was reset \(ECONNRESET\)|the connection closed in the middle of the body) \(5 tries in a row\)\n  fix: check the server and run the same fetch again: the .* verified so far are kept in failing\.bin\.part$/m);
      assert.ok(!fs.existsSync(path.join(dir, "failing.bin")));
    } finally {
      await proxy.close();
    }
    const again = await fetchVia(server.url, "failing.bin");
    assert.equal(again.code, 0, again.err);
    assert.ok((again.report!.resumed as number) > 0, "the seed's chunks placed the first time are kept");
    assert.equal(sha256File(path.join(dir, "failing.bin")), v1sha());
  });
});

describe("resume", () => {
  it("kill -9 in the middle, run again: only what is missing is downloaded", async () => {
    const dir = tempDir("crecipe-fetch-resume-");
    fs.writeFileSync(path.join(dir, "big.src"), pseudoRandom(40 << 20, "resume"));
    assert.equal(crecipe(dir, ["-q", indexRecipe(dir, { "big.bin": path.join(dir, "big.src") })]).status, 0);
    const server = await startServe(path.join(dir, "out"), ["-q"]);
    const slow = await startProxy(server.port, { delayMs: 10 });
    try {
      const first = startFetch(dir, [`${slow.url}big.bin`, "-o", "big.bin"]);
      const state = path.join(dir, "big.bin.part.json");
      const doneBytes = () => {
        try {
          const index = decodeChunkIndex(fs.readFileSync(path.join(dir, "big.bin.part.chunks")));
          const bits = unpackBits(JSON.parse(fs.readFileSync(state, "utf8")).done, index.chunks.length);
          return index.chunks.reduce((n, c, k) => n + (bits[k] ? c.size : 0), 0);
        } catch {
          return 0;
        }
      };
      await waitFor(() => doneBytes() > 8 << 20, 40_000);
      first.child.kill("SIGKILL");
      const killed = await first.done;
      assert.equal(killed.signal, "SIGKILL");
      assert.ok(processGone(first.child.pid!));
      const before = doneBytes();
      assert.ok(before < 40 << 20, "killed before the end");

      const second = await runFetch(dir, [`${server.url}big.bin`, "-o", "big.bin"]);
      assert.equal(second.code, 0, second.err);
      const report = second.report!;
      assert.ok((report.resumed as number) >= before, `resumed ${report.resumed} < ${before} verified before the kill`);
      assert.equal(report.fetched as number, (40 << 20) - (report.resumed as number), `only the missing chunks are fetched: ${JSON.stringify(report)}`);
      assert.match(second.err, /MB resumed, /);
      assert.equal(sha256File(path.join(dir, "big.bin")), sha256File(path.join(dir, "big.src")));
      assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith("big.bin")).sort(), ["big.bin", "big.bin.chunks"]);
    } finally {
      await slow.close();
      await server.stop();
    }
  });
});

// A seed is read in blocks of 1 MiB (or the index's max chunk): a chunk may begin in the
// block before the one it ends in, and be longer than 1 MiB.
describe("chunks across the seed reader's blocks", () => {
  const dir = tempDir("crecipe-fetch-blocks-");
  let server: Awaited<ReturnType<typeof startServe>>;
  const serve = (name: string, data: Buffer, params?: { min: number; normal: number; max: number }) => {
    fs.mkdirSync(path.join(dir, "www"), { recursive: true });
    fs.writeFileSync(path.join(dir, "www", name), data);
    const index = chunkIndex(data, params);
    fs.writeFileSync(path.join(dir, "www", `${name}.chunks`), encodeChunkIndex(index));
    fs.writeFileSync(path.join(dir, `seed-${name}`), data); // the same bytes, no index beside it
    return index;
  };
  before(async () => {
    const last = serve("tail.bin", pseudoRandom((1 << 20) + 1000, "tail"));
    assert.ok(last.chunks.at(-1)!.offset < 1 << 20, "the last chunk begins in the first block");
    serve("long.bin", pseudoRandom(12 << 20, "long"), { min: 1 << 20, normal: 2 << 20, max: 4 << 20 });
    server = await startServe(path.join(dir, "www"));
  });
  after(() => server?.stop());

  for (const version of [2, 1]) {
    for (const name of ["tail.bin", "long.bin"]) {
      it(`${name === "tail.bin" ? "the seed's last chunk begins a block before its end" : "chunks of up to 4 MiB"}, index version ${version}`, async () => {
        const served = path.join(dir, "www", `${name}.chunks`);
        if (version === 1) {
          const index = decodeChunkIndex(fs.readFileSync(served));
          fs.writeFileSync(served, encodeChunkIndex({ ...index, chunks: index.chunks.map(({ crc: _, ...c }) => c) }));
        }
        const out = `got-${version}-${name}`;
        const run = await runFetch(dir, [`${server.url}${name}`, "--seed", `seed-${name}`, "-o", out, "--no-index"]);
        assert.equal(run.code, 0, run.err);
        assert.equal(sha256File(path.join(dir, out)), sha256File(path.join(dir, "www", name)));
        assert.equal(run.report!.fetched, 0, "every chunk came from the seed");
      });
    }
  }
});

// A chunk found where the seed should hold it is checked by its CRC-32 alone, then by the
// whole file's sha256: bytes with the right CRC-32 (forged here) must still not get through.
describe("a seed chunk with the index's CRC-32 and other bytes", () => {
  it("the whole file's hash catches it, each chunk taken so is hashed, and the wrong one is downloaded", async () => {
    const dir = tempDir("crecipe-fetch-crc-");
    const data = pseudoRandom(3 << 20, "forged");
    fs.mkdirSync(path.join(dir, "www"));
    fs.writeFileSync(path.join(dir, "www/file.bin"), data);
    const index = chunkIndex(data);
    fs.writeFileSync(path.join(dir, "www/file.bin.chunks"), encodeChunkIndex(index));
    const k = Math.floor(index.chunks.length / 2);
    const chunk = index.chunks[k];
    const seed = Buffer.from(data);
    const bytes = seed.subarray(chunk.offset, chunk.offset + chunk.size);
    bytes[100] ^= 0xff;
    forgeCrc(bytes, chunk.crc!);
    assert.equal(crc32(bytes), chunk.crc, "the forged chunk has the index's CRC-32");
    assert.notEqual(createHash("sha256").update(bytes).digest("hex"), chunk.digest);
    fs.writeFileSync(path.join(dir, "seed.bin"), seed);
    const server = await startServe(path.join(dir, "www"));
    try {
      const run = await runFetch(dir, [`${server.url}file.bin`, "--seed", "seed.bin", "-o", "got.bin", "--no-index"]);
      assert.equal(run.code, 0, run.err);
      assert.equal(sha256File(path.join(dir, "got.bin")), sha256File(path.join(dir, "www/file.bin")));
      assert.equal(run.report!.fetched, chunk.size, "the forged chunk, and only it, was downloaded");
      assert.equal((run.report!.reused as number) + (run.report!.fetched as number), data.length);
    } finally {
      await server.stop();
    }
  });
});

/** Change the last 4 bytes of `bytes` so that its CRC-32 is `target` (CRC-32 is linear: run its table backwards). */
function forgeCrc(bytes: Buffer, target: number): void {
  const table = Array.from({ length: 256 }, (_, n) => {
    for (let b = 0; b < 8; b++) n = n & 1 ? (0xedb88320 ^ (n >>> 1)) >>> 0 : n >>> 1;
    return n >>> 0;
  });
  const byTop = new Map(table.map((t, i) => [t >>> 24, i]));
  let r = ~target >>> 0;
  const picks: number[] = [];
  for (let i = 0; i < 4; i++) {
    const j = byTop.get(r >>> 24)!;
    picks.unshift(j);
    r = ((r ^ table[j]) << 8) >>> 0;
  }
  let reg = ~crc32(bytes.subarray(0, bytes.length - 4)) >>> 0;
  for (let i = 0; i < 4; i++) {
    bytes[bytes.length - 4 + i] = (reg ^ picks[i]) & 0xff;
    reg = (table[picks[i]] ^ (reg >>> 8)) >>> 0;
  }
}

describe("errors a user sees", () => {
  it("usage errors exit 2; a missing index or server exits 1 with what to do", async () => {
    const dir = tempDir("crecipe-fetch-usage-");
    const noUrl = crecipe(dir, ["fetch", "-o", "x"]);
    assert.equal(noUrl.status, 2);
    assert.match(noUrl.stderr, /^crecipe: error: crecipe fetch: no URL\n  fix: usage: crecipe fetch URL -o FILE/m);
    const noOut = crecipe(dir, ["fetch", "http://127.0.0.1:1/x"]);
    assert.equal(noOut.status, 2);
    assert.match(noOut.stderr, /where to\? \(-o FILE\)/);
    assert.equal(crecipe(dir, ["fetch", "ftp://x/y", "-o", "y"]).status, 2);
    assert.equal(crecipe(dir, ["fetch", "--bogus"]).status, 2);

    fs.mkdirSync(path.join(dir, "www"));
    fs.writeFileSync(path.join(dir, "www/plain.bin"), "no index beside me\n");
    const server = await startServe(path.join(dir, "www"), ["-q"]);
    try {
      const noIndex = await runFetch(dir, [`${server.url}plain.bin`, "-o", "plain.bin"]);
      assert.equal(noIndex.code, 1);
      assert.match(noIndex.err, /^crecipe: error: http:.*\/plain\.bin\.chunks: no chunk index beside the file \(404\)\n  fix: build one beside it \(chunks\(target\)/m);
      assert.equal(noIndex.err.trim().split("\n").length, 2, "one block");

      // A seed that is not there: the error names it, and nothing is left beside OUT.
      fs.writeFileSync(path.join(dir, "www/indexed.bin"), pseudoRandom(300_000, "indexed"));
      fs.writeFileSync(path.join(dir, "www/indexed.bin.chunks"), encodeChunkIndex(await indexFile(path.join(dir, "www/indexed.bin"))));
      const badSeed = await runFetch(dir, [`${server.url}indexed.bin`, "--seed", "nowhere.bin", "-o", "indexed.bin"]);
      assert.equal(badSeed.code, 1);
      assert.match(badSeed.err, /^crecipe: error: seed nowhere\.bin is not a file\n  fix: give files that may share chunks/m);
      assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith("indexed.bin")), [], "no partial download left");
    } finally {
      await server.stop();
    }
    const port = server.port; // nothing listens there now
    const refused = await runFetch(dir, [`http://127.0.0.1:${port}/plain.bin`, "-o", "plain.bin"]);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /^crecipe: error: cannot read http:.*\/plain\.bin and its index: the connection was refused \(ECONNREFUSED\) \(5 tries\)\n  fix: check the URL and the server/m);
  });
});
