/** One gzip stream (formats/zlib-stream.ts): what gunzip reads back, whatever the writes. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as zlib from "node:zlib";
import { it } from "node:test";
import { GzipStream } from "../../lib/formats/zlib-stream.ts";

function gzipOf(data: Uint8Array, piece: number, level = 6): Buffer {
  const stream = new GzipStream(level);
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += piece) out.push(...stream.push(data.subarray(at, at + piece)));
  out.push(...stream.end());
  return Buffer.concat(out);
}

/** 1 MiB of text that compresses, with some noise that does not. */
const sample = (() => {
  const data = Buffer.alloc(1 << 20);
  let x = 7;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = i % 97 < 60 ? 0x61 + (i % 23) : x >>> 24;
  }
  return data;
})();

it("the same bytes whatever the sizes of the writes, and gunzip reads them back", () => {
  const whole = gzipOf(sample, sample.length);
  for (const piece of [1, 511, 4096, 70_000]) assert.ok(gzipOf(sample, piece).equals(whole), `writes of ${piece} bytes`);
  assert.ok(zlib.gunzipSync(whole).equals(sample));
  assert.ok(whole.length < sample.length * 0.6, `compressed: ${whole.length}`);
  const gunzip = spawnSync("gzip", ["-dc"], { input: whole });
  assert.equal(gunzip.status, 0);
  assert.ok(gunzip.stdout.equals(sample), "GNU gzip reads it");
});

it("one member, no name, no time; its trailer counts the whole input (gunzip checks its CRC)", () => {
  const gz = gzipOf(sample, 65_536);
  assert.equal(gz.subarray(0, 10).toString("hex"), "1f8b0800000000000003");
  assert.equal(gz.readUInt32LE(gz.length - 4), sample.length);
});

it("an empty input is a valid empty stream; levels 0 and 9 work; misuse is an error", () => {
  const empty = gzipOf(new Uint8Array(0), 1);
  assert.equal(zlib.gunzipSync(empty).length, 0);
  for (const level of [0, 9]) assert.ok(zlib.gunzipSync(gzipOf(sample, 100_000, level)).equals(sample));
  assert.throws(() => new GzipStream(10), /gzip level 10: levels are whole numbers from 0 to 9/);
  const stream = new GzipStream();
  stream.end();
  assert.throws(() => stream.push(sample), /the stream has ended/);
});
