/**
 * Splitting a seed into its chunks, the way formats/chunks.ts's Chunker would, and
 * hashing each, on another thread: it reads the seed into a ring of shared-memory slots
 * while this thread looks the chunks up and writes the ones the new file wants straight
 * from the slots, hashing the new file as it goes. The seed is read once.
 *
 * Most of a seed is the new file's chunks at the same place, or shifted by an edit
 * before them: SeedSplitter first looks where the new file's next chunk should be, and
 * hashes that span; only where it differs does it run the Chunker, until a chunk it finds
 * is one of the new file's and it can look ahead again. A chunk boundary of the seed is
 * where its own chunking would cut (a cut depends only on the bytes since the one before),
 * so both ways find the same chunks: the look-ahead only skips the rolling hash.
 */
import { createHash, type Hash } from "node:crypto";
import { Chunker, type ChunkParams, GEAR, topBits } from "../formats/chunks.ts";
import { startThread, threadsWanted } from "../engine/threads.ts";

const SLOTS = 8;
const SLOT = 1 << 20;

/** A chunk of the seed: where it is, its sha256, and its bytes, in one piece or two (valid only during the callback). */
export interface SeedChunk {
  offset: number;
  size: number;
  digest: string;
  bytes: () => Buffer[];
}

/**
 * The new file's chunks, in order: what the seed is expected to hold. In typed arrays,
 * not a string per chunk: they go to the seed thread, whose heap is small, and a file of
 * a million chunks needs 36 MB here instead of hundreds on a heap.
 */
export interface Expected {
  sizes: Int32Array;
  /** Each chunk's sha256, 32 bytes after 32 bytes. */
  digests: Uint8Array;
}

/** The Expected of chunks as an index lists them. */
export function expectedOf(chunks: readonly { size: number; digest: string }[]): Expected {
  const sizes = new Int32Array(chunks.length);
  const digests = Buffer.alloc(32 * chunks.length);
  chunks.forEach((c, k) => {
    sizes[k] = c.size;
    digests.write(c.digest, 32 * k, 32, "hex");
  });
  return { sizes, digests };
}

/**
 * The chunks of a seed fed to it piece by piece: their ends (offsets in the seed) and
 * sha256. The pieces it is fed must stay as they are until a chunk beyond them ends (a
 * chunk that is not where it was expected is split again from its start). They are the
 * Chunker's chunks when the expected ones are the Chunker's too (an index crecipe made);
 * an index cut otherwise still gives chunks whose digests are checked, only not those.
 * Plain JavaScript that names nothing outside itself: the seed thread runs its source too.
 */
export class SeedSplitter {
  /** The chunks' indexes sorted by their digest's first four bytes (then by index), and those bytes: to find a chunk by its digest. */
  private readonly byKey: Int32Array;
  private readonly keys: Uint32Array;
  private readonly digestBytes: Buffer;
  /** A key is a digest's first four bytes divided by this (fewer bits when there are more chunks). */
  private readonly keyShift: number;
  /** The new file's chunk expected next (while splitting: the first one a found chunk may be). */
  private k = 0;
  private looking: boolean;
  private chunker: { push(data: Uint8Array): number[]; finish(): number };
  /** The chunk being read: where it began, its length so far, its hash, and (looking) its bytes. */
  private start = 0;
  private length = 0;
  private hash: Hash;
  private parts: Uint8Array[] = [];
  private ends: number[] = [];
  private digests: string[] = [];
  /** Bytes of the seed found where the new file's chunks were looked for (the rest was split). */
  looked = 0;
  /**
   * The new file's chunks that are looked for ahead: all but its last, which ends where
   * the file does, not where a chunk would be cut (a seed's bytes may go on after it).
   */
  private readonly lookable: number;

  constructor(
    private readonly params: ChunkParams,
    private readonly expected: Expected,
    private readonly newHash: () => Hash,
    private readonly ChunkerClass: new (params: ChunkParams) => { push(data: Uint8Array): number[]; finish(): number },
  ) {
    this.lookable = Math.max(0, expected.sizes.length - 1);
    const d = expected.digests;
    this.digestBytes = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    // Sorted as numbers (digest bits above, index below), not with a comparator, which
    // would copy them onto the heap: a million chunks fit a small thread's heap.
    const n = expected.sizes.length;
    const low = 2 ** Math.max(1, Math.ceil(Math.log2(n + 1)));
    const keyBits = Math.min(32, 53 - Math.log2(low));
    const both = new Float64Array(n);
    for (let k = 0; k < n; k++) both[k] = Math.floor(this.digestBytes.readUInt32BE(32 * k) / 2 ** (32 - keyBits)) * low + k;
    both.sort();
    this.byKey = new Int32Array(n);
    this.keys = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      this.byKey[i] = both[i] % low;
      this.keys[i] = Math.floor(both[i] / low);
    }
    this.keyShift = 2 ** (32 - keyBits);
    this.looking = this.lookable > 0;
    this.chunker = new ChunkerClass(params);
    this.hash = newHash();
  }

  /** The chunks that end in `data`, the seed's next bytes: their ends and sha256 (hex). */
  push(data: Uint8Array): { ends: number[]; digests: string[] } {
    this.feed(data);
    return this.take();
  }

  /** The seed has ended: its last chunk. */
  finish(): { ends: number[]; digests: string[] } {
    // Split again until what is left is not a looked-for chunk's start (each pass is shorter).
    while (this.looking && this.length > 0) this.split();
    this.chunker.finish();
    if (this.length > 0) this.emit(this.hash.digest());
    return this.take();
  }

  private take(): { ends: number[]; digests: string[] } {
    const out = { ends: this.ends, digests: this.digests };
    this.ends = [];
    this.digests = [];
    return out;
  }

  /** Whether `digest` is the new file's chunk k's. */
  private is(digest: Buffer, k: number): boolean {
    return this.digestBytes.compare(digest, 0, 32, 32 * k, 32 * k + 32) === 0;
  }

  /** The first of the new file's chunks from `from` on whose digest is `digest`, or -1. */
  private find(digest: Buffer, from: number): number {
    const key = Math.floor(digest.readUInt32BE(0) / this.keyShift);
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.keys.length && this.keys[i] === key; i++) {
      const k = this.byKey[i];
      if (k >= from && this.is(digest, k)) return k;
    }
    return -1;
  }

  private emit(digest: Buffer): void {
    this.start += this.length;
    this.ends.push(this.start);
    this.digests.push(digest.toString("hex"));
    this.length = 0;
    this.hash = this.newHash();
    this.parts = [];
  }

  /** The chunk being read is not the expected one: split its bytes from its start. */
  private split(): void {
    const parts = this.parts;
    this.parts = [];
    this.length = 0;
    this.hash = this.newHash();
    this.splitFromHere();
    for (const part of parts) this.feed(part);
  }

  private splitFromHere(): void {
    this.looking = false;
    this.chunker = new this.ChunkerClass(this.params);
  }

  private feed(data: Uint8Array): void {
    const n = data.length;
    for (let i = 0; i < n;) {
      if (this.looking) {
        const size = this.expected.sizes[this.k];
        const piece = data.subarray(i, i + Math.min(size - this.length, n - i));
        this.hash.update(piece);
        this.parts.push(piece);
        this.length += piece.length;
        i += piece.length;
        if (this.length < size) continue;
        const digest = this.hash.digest();
        if (!this.is(digest, this.k)) {
          this.split();
          continue;
        }
        this.looked += size;
        this.emit(digest);
        if (++this.k === this.lookable) this.splitFromHere();
        continue;
      }
      const rest = data.subarray(i);
      let from = 0;
      let ahead = false;
      for (const cut of this.chunker.push(rest)) {
        this.hash.update(rest.subarray(from, cut));
        this.length += cut - from;
        from = cut;
        const digest = this.hash.digest();
        this.emit(digest);
        // One of the new file's chunks: the ones after it are looked for next to it.
        const found = this.find(digest, this.k);
        if (found >= 0) {
          this.k = found + 1;
          ahead = this.k < this.lookable;
          if (ahead) break;
        }
      }
      if (ahead) {
        this.looking = true;
        i += from;
        continue;
      }
      this.hash.update(rest.subarray(from));
      this.length += rest.length - from;
      i = n;
    }
  }
}

// Slot states: 0 free (the reader's to fill), 1 full (ours). A message per slot says
// what is in it: its length, and the chunks that end in it with their sha256.
const WORKER_SOURCE = (chunker: string, splitter: string, topBits: string) => `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const { createHash } = require("node:crypto");
const GEAR = workerData.gear;
const topBits = ${topBits};
// What the Chunker's source refers to, here: its table and mask helper (from formats/chunks.ts),
// no parameter check (done on the other side), esbuild's name helper, its default params.
const checkParams = () => {};
const __name = (f) => f;
const CHUNK_PARAMS = undefined;
const Chunker = ${chunker};
const SeedSplitter = ${splitter};
const { file, params, expected, sab, slots, slot } = workerData;
const state = new Int32Array(sab, slots * slot, slots + 1);
try {
  const splitter = new SeedSplitter(params, expected, () => createHash("sha256"), Chunker);
  const fd = fs.openSync(file, "r");
  for (let k = 0, at = 0; ; k = (k + 1) % slots) {
    while (Atomics.load(state, k) !== 0) {
      if (Atomics.load(state, slots) === 1) process.exit(0);
      Atomics.wait(state, k, 1, 200);
    }
    // A slot is refilled only after the seven after it: the bytes of a chunk that began in the slot before are still there.
    const block = Buffer.from(sab, k * slot, slot);
    const n = fs.readSync(fd, block, 0, slot, null);
    if (n === 0) {
      const { ends, digests } = splitter.finish();
      parentPort.postMessage({ slot: -1, at, n: 0, ends, digests });
      break;
    }
    const { ends, digests } = splitter.push(block.subarray(0, n));
    Atomics.store(state, k, 1);
    parentPort.postMessage({ slot: k, at, n, ends, digests });
    at += n;
  }
} catch (error) {
  parentPort.postMessage({ error: String(error && (error.code || error.message)) });
}
`;

/** Bytes of a seed read so far: where in the seed they begin, and themselves. */
export interface SeedBlock {
  at: number;
  data: Buffer;
}

/** The pieces of [offset, offset + size) of a seed found in `blocks` (views, no copy). */
export function piecesOf(blocks: readonly SeedBlock[], offset: number, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (const { at, data } of blocks) {
    const from = Math.max(offset, at);
    const to = Math.min(offset + size, at + data.length);
    if (from < to) pieces.push(data.subarray(from - at, to - at));
  }
  return pieces;
}

/** A SeedSplitter for `expected` on this thread. */
export function seedSplitter(params: ChunkParams, expected: Expected): SeedSplitter {
  return new SeedSplitter(params, expected, () => createHash("sha256"), Chunker);
}

/**
 * Chunk `file` on another thread, handing each chunk to `each` in order (return false to
 * stop: nothing more is wanted). Undefined where worker threads cannot start.
 */
export function scanOnThread(file: string, params: ChunkParams, expected: Expected, each: (chunk: SeedChunk) => boolean, onBlock: () => Promise<void>): Promise<void> | undefined {
  if (!threadsWanted() || params.max > SLOT) return undefined;
  let worker: import("node:worker_threads").Worker;
  const sab = new SharedArrayBuffer(SLOTS * SLOT + (SLOTS + 1) * 4);
  const state = new Int32Array(sab, SLOTS * SLOT, SLOTS + 1);
  try {
    worker = startThread(WORKER_SOURCE(Chunker.toString(), SeedSplitter.toString(), topBits.toString()), { file, params, expected, gear: GEAR, sab, slots: SLOTS, slot: SLOT });
  } catch {
    return undefined;
  }
  // The slots not yet given back, oldest first: a chunk may begin in an earlier one.
  const held: (SeedBlock & { slot: number })[] = [];
  const release = (slot: number) => {
    Atomics.store(state, slot, 0);
    Atomics.notify(state, slot);
  };
  return new Promise<void>((resolve, reject) => {
    let busy = Promise.resolve();
    let stopped = false;
    let chunkStart = 0; // where the chunk being read began
    const stop = () => {
      stopped = true;
      Atomics.store(state, SLOTS, 1);
      for (let k = 0; k < SLOTS; k++) Atomics.notify(state, k);
      void worker.terminate();
    };
    worker.on("error", (error) => (stop(), reject(error)));
    // After the messages it sent before it ended (the last one stops the scan): a thread
    // that ended without that has failed.
    worker.on("exit", () => {
      busy = busy.then(() => {
        if (!stopped) stop(), reject(new Error("reading the seed: its thread stopped"));
      });
    });
    worker.on("message", (m: { error?: string; slot: number; at: number; n: number; ends: number[]; digests: string[] }) => {
      busy = busy.then(async () => {
        if (stopped) return;
        if (m.error) return stop(), reject(new Error(`reading the seed: ${m.error}`));
        if (m.slot >= 0) held.push({ slot: m.slot, at: m.at, data: Buffer.from(sab, m.slot * SLOT, m.n) });
        for (let i = 0; i < m.ends.length; i++) {
          const offset = chunkStart;
          const end = m.ends[i];
          chunkStart = end;
          const bytes = () => piecesOf(held, offset, end - offset);
          if (!each({ offset, size: end - offset, digest: m.digests[i], bytes })) return stop(), resolve();
        }
        // A chunk is at most one slot long (params.max ≤ SLOT): the next one begins in the
        // newest slot or the one before it (the seed's last chunk, when the last slot is short).
        while (held.length > 2 || (m.slot < 0 && held.length)) release(held.shift()!.slot);
        if (m.slot < 0) return stop(), resolve();
        await onBlock();
      }).catch((error) => (stop(), reject(error)));
    });
  });
}

