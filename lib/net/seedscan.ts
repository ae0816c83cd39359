/**
 * Splitting a seed into its chunks, the way formats/chunks.ts's Chunker would, to find
 * the ones a new file is made of. fetch feeds it the seed block by block, as it reads it.
 *
 * Most of a seed is the new file's chunks at the same place, or shifted by an edit
 * before them: SeedSplitter first looks where the new file's next chunk should be, and
 * checks that span (its CRC-32 when the index has them, else its sha256); only where it
 * differs does it run the Chunker and hash what it cuts, until a chunk it finds is one of
 * the new file's and it can look ahead again. A chunk boundary of the seed is where its
 * own chunking would cut (a cut depends only on the bytes since the one before), so both
 * ways find the same chunks: the look-ahead only skips the rolling hash.
 *
 * (It ran on a thread of its own until the CRC-32s: the span's check is now cheap enough
 * that a thread's start, ~80 ms here, cost more than it saved.)
 */
import { createHash, type Hash } from "node:crypto";
import { Chunker, type ChunkParams, fastCrc32 } from "../formats/chunks.ts";

/** A CRC-32 function (zlib's): what SeedSplitter checks a looked-for chunk with first. */
type Crc32 = (data: Uint8Array, value: number) => number;

/** Bytes given to the Chunker at a time while splitting. */
const SPLIT_SLICE = 64 * 1024;

/**
 * A chunk of the seed: where it is, its sha256, and its bytes, in one piece or two (valid
 * only during the callback). `weak`: found where the new file's chunk of that digest was
 * looked for, and checked by its CRC-32 only (the whole file's sha256 checks it).
 */
export interface SeedChunk {
  offset: number;
  size: number;
  digest: string;
  weak: boolean;
  bytes: () => Buffer[];
}

/**
 * The new file's chunks, in order: what the seed is expected to hold. In typed arrays,
 * not a string per chunk: a file of a million chunks needs 40 MB instead of hundreds.
 */
export interface Expected {
  sizes: Int32Array;
  /** Each chunk's sha256, 32 bytes after 32 bytes. */
  digests: Uint8Array;
  /** Each chunk's CRC-32 (as a signed int), when the index has them (version 2). */
  crcs?: Int32Array;
}

/** The Expected of chunks as an index lists them. */
export function expectedOf(chunks: readonly { size: number; digest: string; crc?: number }[]): Expected {
  const sizes = new Int32Array(chunks.length);
  const digests = Buffer.alloc(32 * chunks.length);
  const crcs = chunks.length && chunks[0].crc !== undefined ? new Int32Array(chunks.length) : undefined;
  chunks.forEach((c, k) => {
    sizes[k] = c.size;
    digests.write(c.digest, 32 * k, 32, "hex");
    if (crcs) crcs[k] = c.crc! | 0;
  });
  return { sizes, digests, crcs };
}

/**
 * The chunks of a seed fed to it piece by piece: their ends (offsets in the seed) and
 * sha256. The pieces it is fed must stay as they are until a chunk beyond them ends (a
 * chunk that is not where it was expected is split again from its start). They are the
 * Chunker's chunks when the expected ones are the Chunker's too (an index crecipe made);
 * an index cut otherwise still gives chunks whose digests are checked, only not those.
 * With `crc32` (zlib's, by default) and the expected chunks' CRC-32s, a span looked at
 * where a chunk should be is checked by its CRC-32 instead of hashed: it is then given
 * that chunk's sha256, marked weak (the caller has the whole file's sha256 check it). The
 * rolling split still hashes what it cuts.
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
  private chunker: Chunker;
  /** The chunk being read: where it began, its length so far, its hash, and (looking) its bytes. */
  private start = 0;
  private length = 0;
  private hash: Hash;
  private crc = 0;
  private parts: Uint8Array[] = [];
  private ends: number[] = [];
  private digests: string[] = [];
  private weak: boolean[] = [];
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
    private crc32: Crc32 | undefined = fastCrc32(),
  ) {
    if (!expected.crcs) this.crc32 = undefined;
    this.lookable = Math.max(0, expected.sizes.length - 1);
    const d = expected.digests;
    this.digestBytes = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    // Sorted as numbers (digest bits above, index below), not with a comparator, which
    // would copy them onto the heap.
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
    this.chunker = new Chunker(params);
    this.hash = createHash("sha256");
  }

  /** The chunks that end in `data`, the seed's next bytes: their ends and sha256 (hex). */
  push(data: Uint8Array): { ends: number[]; digests: string[]; weak: boolean[] } {
    this.feed(data);
    return this.take();
  }

  /** The seed has ended: its last chunk. */
  finish(): { ends: number[]; digests: string[]; weak: boolean[] } {
    // Split again until what is left is not a looked-for chunk's start (each pass is shorter).
    while (this.looking && this.length > 0) this.split();
    this.chunker.finish();
    if (this.length > 0) this.emit(this.hash.digest());
    return this.take();
  }

  private take(): { ends: number[]; digests: string[]; weak: boolean[] } {
    const out = { ends: this.ends, digests: this.digests, weak: this.weak };
    this.ends = [];
    this.digests = [];
    this.weak = [];
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

  /** A chunk ends here; `weak`: checked by its CRC-32 only (the hash was not used). */
  private emit(digest: Buffer, weak = false): void {
    this.start += this.length;
    this.ends.push(this.start);
    this.digests.push(digest.toString("hex"));
    this.weak.push(weak);
    this.length = 0;
    if (!weak) this.hash = createHash("sha256");
    this.crc = 0;
    this.parts = [];
  }

  /** The chunk being read is not the expected one: split its bytes from its start. */
  private split(): void {
    const parts = this.parts;
    this.parts = [];
    this.length = 0;
    this.hash = createHash("sha256");
    this.crc = 0;
    this.splitFromHere();
    for (const part of parts) this.feed(part);
  }

  private splitFromHere(): void {
    this.looking = false;
    this.chunker = new Chunker(this.params);
  }

  private feed(data: Uint8Array): void {
    const n = data.length;
    for (let i = 0; i < n;) {
      if (this.looking) {
        const size = this.expected.sizes[this.k];
        const piece = data.subarray(i, i + Math.min(size - this.length, n - i));
        if (this.crc32) this.crc = this.crc32(piece, this.crc);
        else this.hash.update(piece);
        this.parts.push(piece);
        this.length += piece.length;
        i += piece.length;
        if (this.length < size) continue;
        if (this.crc32) {
          if ((this.crc | 0) !== this.expected.crcs![this.k]) {
            this.split();
            continue;
          }
          this.looked += size;
          this.emit(this.digestBytes.subarray(32 * this.k, 32 * this.k + 32), true);
        } else {
          const digest = this.hash.digest();
          if (!this.is(digest, this.k)) {
            this.split();
            continue;
          }
          this.looked += size;
          this.emit(digest);
        }
        if (++this.k === this.lookable) this.splitFromHere();
        continue;
      }
      const rest = data.subarray(i);
      let from = 0;
      let ahead = false;
      // A slice at a time, so that the split stops soon after a found chunk instead of
      // cutting the rest of the block for nothing (the rolling hash is the slow part, and
      // slower still before V8 has compiled it: ~30 ms a MiB in a fresh process).
      for (let slice = 0; slice < rest.length && !ahead; slice += SPLIT_SLICE) {
        for (const end of this.chunker.push(rest.subarray(slice, slice + SPLIT_SLICE))) {
          const cut = slice + end;
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

