/** One gzip stream (formats/zlib-stream.ts): what gunzip reads back, whatever the writes. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as zlib from "node:zlib";
import { it } from "node:test";
import { GzipStream } from "../../lib/formats/zlib-stream.ts";
import { pseudoRandom } from "../net/helpers.ts";

function gzipOf(data: Uint8Array, piece: number, level = 6): { gz: Buffer; pieces: number } {
  const stream = new GzipStream(level);
  const out: Buffer[] = [];
  const put = (bytes: Uint8Array) => out.push(Buffer.from(bytes)); // a copy: the view is reused
  for (let at = 0; at < data.length; at += piece) stream.push(data.subarray(at, at + piece), put);
  stream.end(put);
  return { gz: Buffer.concat(out), pieces: out.length };
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** 1 MiB of text that compresses, with runs of noise that do not. */
const sample = (() => {
  const data = Buffer.alloc(1 << 20);
  const noise = pseudoRandom(data.length, "noise");
  for (let i = 0; i < data.length; i++) data[i] = i % 97 < 60 ? 0x61 + (i % 23) : noise[i];
  return data;
})();

it("the same bytes whatever the sizes of the writes, and gunzip reads them back", () => {
  const { gz } = gzipOf(sample, sample.length);
  for (const piece of [1, 511, 4096, 70_000]) assert.ok(gzipOf(sample, piece).gz.equals(gz), `writes of ${piece} bytes`);
  assert.ok(zlib.gunzipSync(gz).equals(sample));
  assert.ok(gz.length < sample.length * 0.6, `compressed: ${gz.length}`);
  const gunzip = spawnSync("gzip", ["-dc"], { input: gz });
  assert.equal(gunzip.status, 0);
  assert.ok(gunzip.stdout.equals(sample), "GNU gzip reads it");
  // The bytes themselves: a change of compressor (or of how it is driven) must be seen
  // here, since it changes the digests of gzipped initrds.
  assert.equal(sha256(gz), "ce1b11e138ba874aa7085e7a7d26c49c5c3b95e3f8bde626a0a2400187057b15");
});

it("input that does not compress comes out in more pieces than it went in: every piece is kept", () => {
  const noise = pseudoRandom(300_000, "incompressible");
  const { gz, pieces } = gzipOf(noise, 100_000);
  assert.ok(pieces > Math.ceil(noise.length / 65_536), `${pieces} pieces`);
  assert.ok(zlib.gunzipSync(gz).equals(noise));
});

it("one member, no name, no time; its trailer counts the whole input (gunzip checks its CRC)", () => {
  const { gz } = gzipOf(sample, 65_536);
  assert.equal(gz.subarray(0, 10).toString("hex"), "1f8b0800000000000003");
  assert.equal(gz.readUInt32LE(gz.length - 4), sample.length);
});

it("an empty input is a valid empty stream; levels 0 and 9 work; misuse is an error", () => {
  assert.equal(zlib.gunzipSync(gzipOf(new Uint8Array(0), 1).gz).length, 0);
  for (const level of [0, 9]) assert.ok(zlib.gunzipSync(gzipOf(sample, 100_000, level).gz).equals(sample));
  assert.throws(() => new GzipStream(10), /gzip level 10: levels are whole numbers from 0 to 9/);
  const stream = new GzipStream();
  stream.end(() => {});
  assert.throws(() => stream.push(sample, () => {}), /the stream has ended/);
  assert.throws(() => stream.end(() => {}), /the stream has ended/);
});
