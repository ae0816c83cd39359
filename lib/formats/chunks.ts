/**
 * Chunk indexes, pure: a content-defined split of a file (FastCDC), and the small binary
 * index that lists its chunks beside it (NAME.chunks), as apenwarr's bupdate .fidx and
 * casync's .caibx do. A client holding an older file chunks it the same way and downloads
 * only the chunks it does not have, by HTTP ranges of the file itself: the server stays a
 * plain static one. No I/O here: bytes in, cut points and records out.
 *
 * The split (algorithm 1, "FastCDC with a 32-bit gear hash and normalised chunking, level 2",
 * Xia et al., USENIX ATC 2016). For each chunk, starting with length 0 and hash 0:
 *   - the first `min` bytes are taken without hashing;
 *   - every following byte b updates hash = (hash << 1) + GEAR[b] (mod 2^32), and the chunk
 *     ends after that byte when (hash & mask) == 0, where mask is the top log2(normal)+2 bits
 *     while the chunk is shorter than `normal`, the top log2(normal)-2 bits after;
 *   - a chunk that reaches `max` bytes ends there; the file's last chunk is what remains.
 * The top bits of the hash depend on the last 32 bytes only, so a cut depends on the bytes
 * around it and the previous cut, not on where the file started: an edit or an insertion
 * changes the chunks it touches and at most one or two after it.
 * GEAR[i] is the first 4 bytes (big-endian) of sha256("crecipe gear " + the byte i).
 *
 * Version 1 parameters: min 16 KiB, normal 64 KiB, max 256 KiB (casync's defaults; chunks
 * average about 70 KiB). Why 64 KiB: for a 200 MB layer the index is 115 KB, and an edit
 * costs the edited bytes plus about one chunk; halving the chunks doubles the index and
 * saves half a chunk per edit, which only pays for files much smaller than that.
 *
 * The index (all integers big-endian):
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 8 | magic `CRCHUNKS` |
 * | 8 | 1 | format version: 2 (1 is read too) |
 * | 9 | 1 | algorithm: 1 (the split above) |
 * | 10 | 2 | reserved, 0 |
 * | 12 | 4 | min |
 * | 16 | 4 | normal (a power of two) |
 * | 20 | 4 | max |
 * | 24 | 8 | the file's size |
 * | 32 | 32 | the file's sha256 |
 * | 64 | 4 | n, the number of chunks |
 * | 68 | 40·n | per chunk, in file order: its size (4), its CRC-32 (4), its sha256 (32) |
 * | 68+40·n | 32 | sha256 of everything before: a truncated or damaged index is refused |
 *
 * A chunk's offset is the sum of the sizes before it (not stored: 8 bytes a chunk saved).
 * Its CRC-32 is gzip's (zlib's crc32 of its bytes): a cheap first check, so a client that
 * looks for a chunk where a seed should hold it need not hash the span with sha256 (a
 * fifth of the time); what it takes so is checked by the whole file's sha256, and only if
 * that differs is each such chunk hashed. Version 1 is the same without the CRC-32 (36
 * bytes a chunk); a client reads both and checks a version 1 index's chunks by sha256.
 *
 * Then, optional, the block section: hints that let a client download less than a whole
 * chunk where an edit begins or ends. Without them an edit costs the edited bytes plus,
 * on average, most of a chunk on each side; with them, a few KB. Each chunk is cut into
 * 4 KiB blocks twice: counted from its start (forward) and from its end (backward, the
 * first block short); each block is named by the first 8 bytes of its sha256. A client
 * that has the chunk before an edit reads, in its seed, the bytes after that chunk and
 * keeps the forward blocks that match; likewise backward from the chunk after the edit.
 * The chunk's own sha256 is still checked whole, so a hint can only cost a download.
 *
 * | offset | size | field |
 * |---|---|---|
 * | M = 100+40·n | 8 | magic `CRBLOCKS` |
 * | M+8 | 4 | block size: 4096 |
 * | M+12 | 4 | bytes of a block's hash: 8 |
 * | M+16 | … | per chunk, in file order: its b = ceil(size/4096) forward hashes, then its b backward hashes |
 *
 * A client reads the first M bytes (a Range request), and later only the hashes of the
 * chunks next to what it lacks, at offsets it computes from the sizes.
 * The same bytes always give the same index, byte for byte.
 */
import { createHash, type Hash } from "node:crypto";
import { createRequire } from "node:module";
import { FormatError } from "./entry.ts";
import { gearScanner, WINDOW } from "./gearscan.ts";

export interface ChunkParams {
  /** Bytes taken before a cut is looked for. */
  min: number;
  /** The normalisation point (a power of two): cuts are rarer before it, likelier after. */
  normal: number;
  /** A chunk never grows past this. */
  max: number;
}

/** The version 1 parameters (see the header of this file for why). */
export const CHUNK_PARAMS: Readonly<ChunkParams> = Object.freeze({ min: 16 * 1024, normal: 64 * 1024, max: 256 * 1024 });

export interface Chunk {
  offset: number;
  size: number;
  /** sha256 hex of the chunk's bytes. */
  digest: string;
  /** CRC-32 of the chunk's bytes (unsigned); absent in a version 1 index. */
  crc?: number;
}

export interface ChunkIndex {
  params: ChunkParams;
  /** The whole file's size and sha256 hex. */
  size: number;
  digest: string;
  chunks: Chunk[];
  /** Per chunk, its forward then backward block hashes (the block section); absent when read from the main part only. */
  blocks?: Buffer[];
}

/** Bytes of a block (in the block section) and of a block's hash. */
export const BLOCK_SIZE = 4096;
export const BLOCK_HASH = 8;
const BLOCKS_MAGIC = Buffer.from("CRBLOCKS", "latin1");

const MAGIC = Buffer.from("CRCHUNKS", "latin1");
const VERSION = 2;
const ALGORITHM = 1;
const HEADER = 68;
/** Bytes of a chunk's record, by format version. */
const RECORD: Record<number, number> = { 1: 36, 2: 40 };
const TRAILER = 32;

/** The version an index is written in: 2 when its chunks carry their CRC-32 (all do, or none). */
function versionOf(index: ChunkIndex): number {
  const weak = index.chunks.filter((c) => c.crc !== undefined).length;
  if (weak !== 0 && weak !== index.chunks.length) throw new FormatError(`${weak} of ${index.chunks.length} chunks have a CRC-32: all or none`);
  return weak || index.chunks.length === 0 ? VERSION : 1;
}

let crcTable: Int32Array | undefined;

type Crc32 = (data: Uint8Array, value: number) => number;
let checked: { crc?: Crc32 } | undefined;

/**
 * zlib's CRC-32 where the runtime has one that is right (several times faster than
 * sha256), else undefined: checked once against the table (some Deno 2 releases returned
 * it signed, or took a continued value as a small integer), unsigned, and an empty piece
 * keeps the value it continues (Node's gives 0). zlib is loaded on the first call, not
 * when crecipe starts.
 */
export function fastCrc32(): Crc32 | undefined {
  return (checked ??= { crc: zlibCrc32() }).crc;
}

function zlibCrc32(): Crc32 | undefined {
  const zlib = createRequire(import.meta.url)("node:zlib") as { crc32?: (data: Uint8Array, value?: number) => number };
  const native = zlib.crc32;
  if (!native) return undefined;
  const crc = (data: Uint8Array, value = 0) => (data.length ? native(data, value) >>> 0 : value >>> 0);
  try {
    const sample = Buffer.from("crecipe checks zlib's CRC-32 once: 123456789");
    const ok = crc(Buffer.from("123456789")) === 0xcbf43926 &&
      crc(sample.subarray(20), crc(sample.subarray(0, 20))) === crc32Slow(sample) &&
      crc(sample, 0xdeadbeef) === crc32Slow(sample, 0xdeadbeef);
    return ok ? crc : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CRC-32 (gzip's) of `data`, continuing from `value` (the CRC-32 of what came before it).
 * zlib's where the runtime has it (Node ≥ 20.15, Deno), else crc32Slow.
 */
export function crc32(data: Uint8Array, value = 0): number {
  const fast = fastCrc32();
  return fast ? fast(data, value) : crc32Slow(data, value);
}

/** CRC-32 by a table, a byte at a time: what crc32 is where zlib has none. */
export function crc32Slow(data: Uint8Array, value = 0): number {
  crcTable ??= Int32Array.from({ length: 256 }, (_, n) => {
    for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1;
    return n;
  });
  let c = ~value;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** GEAR[i]: the first 4 bytes of sha256("crecipe gear " + byte i), as a signed 32-bit int. */
export const GEAR = (() => {
  const table = new Int32Array(256);
  const prefix = Buffer.from("crecipe gear ", "latin1");
  for (let i = 0; i < 256; i++) {
    table[i] = createHash("sha256").update(prefix).update(Buffer.of(i)).digest().readInt32BE(0);
  }
  return table;
})();

/** The top `bits` bits of a 32-bit word, as a signed int (what `hash & mask` compares). */
export const topBits = (bits: number) => (~0 << (32 - bits)) | 0;

/** Refuse parameters the split is not defined for. */
export function checkParams(params: ChunkParams): void {
  const { min, normal, max } = params;
  const log = Math.log2(normal);
  if (!Number.isInteger(log) || log < 6 || log > 28 || !(Number.isInteger(min) && min >= 64 && min < normal) || !(Number.isInteger(max) && max > normal && max < 2 ** 31)) {
    throw new FormatError(`chunk parameters min ${min}, normal ${normal}, max ${max}: want 64 ≤ min < normal < max < 2^31, normal a power of two`);
  }
}

/**
 * The streaming split: feed the file's bytes in blocks of any size, get back where chunks
 * end. The cuts do not depend on how the bytes were split into blocks.
 *
 * ```ts
 * const chunker = new Chunker();
 * const ends = chunker.push(block);   // indexes into `block` where a chunk ends
 * const last = chunker.finish();      // the length of the last chunk (0: none)
 * ```
 */
export class Chunker {
  private length = 0;
  private hash = 0;
  private readonly maskSmall: number;
  private readonly maskLarge: number;
  /** The rolling hash itself, in WebAssembly where there is one (formats/gearscan.ts). */
  private readonly scanner = gearScanner(GEAR);

  constructor(readonly params: ChunkParams = CHUNK_PARAMS) {
    checkParams(params);
    const bits = Math.log2(params.normal);
    this.maskSmall = topBits(bits + 2);
    this.maskLarge = topBits(bits - 2);
  }

  /** Positions in `data` (exclusive ends) where a chunk ends. */
  push(data: Uint8Array): number[] {
    const { min, normal, max } = this.params;
    const cuts: number[] = [];
    const n = data.length;
    let i = 0;
    let length = this.length;
    let hash = this.hash;
    while (i < n) {
      if (length < min) {
        const skip = Math.min(min - length, n - i);
        i += skip;
        length += skip;
        hash = 0;
        continue;
      }
      const small = length < normal;
      const mask = small ? this.maskSmall : this.maskLarge;
      const end = Math.min(n, i + (small ? normal : max) - length);
      const start = i;
      let cut = false;
      while (i < end) {
        const to = Math.min(end, i + WINDOW);
        const at = this.scanner.scan(data, i, to, hash, mask);
        hash = this.scanner.hash;
        if (at >= 0) {
          i = at;
          cut = true;
          break;
        }
        i = to;
      }
      length += i - start;
      if (cut || length === max) {
        cuts.push(i);
        length = 0;
      }
    }
    this.length = length;
    this.hash = hash;
    return cuts;
  }

  /** The length of the last chunk (what was fed since the last cut), and start over. */
  finish(): number {
    const last = this.length;
    this.length = 0;
    this.hash = 0;
    return last;
  }
}

/** The chunk sizes of a whole buffer. */
export function chunkSizes(data: Uint8Array, params: ChunkParams = CHUNK_PARAMS): number[] {
  const chunker = new Chunker(params);
  const sizes: number[] = [];
  let from = 0;
  for (const cut of chunker.push(data)) {
    sizes.push(cut - from);
    from = cut;
  }
  const last = chunker.finish();
  if (last) sizes.push(last);
  return sizes;
}

/**
 * Chunks and hashes a file fed in blocks: each chunk's sha256 and block hashes, and the
 * whole file's sha256.
 *
 * ```ts
 * const indexer = new ChunkIndexer();
 * for (const block of blocks) indexer.update(block);
 * const bytes = encodeChunkIndex(indexer.finish());
 * ```
 */
export class ChunkIndexer {
  private readonly chunker: Chunker;
  private readonly fileHash = createHash("sha256");
  /** The current chunk's bytes (a chunk is at most `max`). */
  private readonly chunk: Buffer;
  private filled = 0;
  private offset = 0;
  private readonly chunks: Chunk[] = [];
  private readonly blocks: Buffer[] = [];

  constructor(readonly params: ChunkParams = CHUNK_PARAMS) {
    this.chunker = new Chunker(params);
    this.chunk = Buffer.allocUnsafe(params.max);
  }

  update(data: Uint8Array): void {
    this.fileHash.update(data);
    let from = 0;
    for (const cut of this.chunker.push(data)) {
      this.chunk.set(data.subarray(from, cut), this.filled);
      this.filled += cut - from;
      this.close();
      from = cut;
    }
    this.chunk.set(data.subarray(from), this.filled);
    this.filled += data.length - from;
  }

  finish(): ChunkIndex {
    if (this.chunker.finish() > 0) this.close();
    return { params: { ...this.params }, size: this.offset, digest: this.fileHash.digest("hex"), chunks: this.chunks, blocks: this.blocks };
  }

  private close(): void {
    const bytes = this.chunk.subarray(0, this.filled);
    this.chunks.push({ offset: this.offset, size: bytes.length, digest: createHash("sha256").update(bytes).digest("hex"), crc: crc32(bytes) });
    this.blocks.push(blockHashes(bytes));
    this.offset += bytes.length;
    this.filled = 0;
  }
}

/** The number of blocks of a chunk, each way. */
export function blockCount(size: number): number {
  return Math.ceil(size / BLOCK_SIZE);
}

/** A block's name: the first BLOCK_HASH bytes of its sha256. */
export function blockHash(bytes: Uint8Array): Buffer {
  return createHash("sha256").update(bytes).digest().subarray(0, BLOCK_HASH);
}

/** A chunk's forward block hashes, then its backward ones. */
export function blockHashes(chunk: Uint8Array): Buffer {
  const count = blockCount(chunk.length);
  const out = Buffer.allocUnsafe(2 * count * BLOCK_HASH);
  for (let j = 0; j < count; j++) {
    blockHash(chunk.subarray(j * BLOCK_SIZE, Math.min(chunk.length, (j + 1) * BLOCK_SIZE))).copy(out, j * BLOCK_HASH);
    const end = chunk.length - j * BLOCK_SIZE;
    blockHash(chunk.subarray(Math.max(0, end - BLOCK_SIZE), end)).copy(out, (count + j) * BLOCK_HASH);
  }
  return out;
}

/** Length of an index's main part (what decodeChunkIndex reads), from its first 68 bytes. */
export function mainLength(head: Uint8Array): number {
  if (head.length < HEADER) throw new FormatError("chunk index: shorter than its header");
  const data = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  checkVersion(data);
  return HEADER + RECORD[data[8]] * data.readUInt32BE(64) + TRAILER;
}

/**
 * About how long the main part of the index of a `size`-byte file is (this version, the
 * default parameters: chunks average about 70 KiB); 0 for an empty file.
 */
export function mainLengthFor(size: number): number {
  return size > 0 ? HEADER + RECORD[VERSION] * Math.ceil(size / (70 * 1024)) + TRAILER : 0;
}

function checkVersion(data: Buffer): void {
  if (!data.subarray(0, 8).equals(MAGIC)) throw new FormatError("not a chunk index (no CRCHUNKS magic)");
  if (!RECORD[data[8]] || data[9] !== ALGORITHM) throw new FormatError(`chunk index version ${data[8]}, algorithm ${data[9]}: this crecipe reads versions 1 and ${VERSION}, algorithm ${ALGORITHM}`);
}

/**
 * Where, in the index file, each chunk's block hashes are: `start[k]` is the offset of
 * chunk k's forward hashes; its backward hashes follow them.
 */
export function blockOffsets(index: ChunkIndex): number[] {
  let at = HEADER + RECORD[versionOf(index)] * index.chunks.length + TRAILER + 16;
  return index.chunks.map((chunk) => {
    const here = at;
    at += 2 * blockCount(chunk.size) * BLOCK_HASH;
    return here;
  });
}

/** Does the block section start at `offset` with the layout this reader knows? */
export function checkBlocksHeader(bytes: Uint8Array): boolean {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return data.length >= 16 && data.subarray(0, 8).equals(BLOCKS_MAGIC) && data.readUInt32BE(8) === BLOCK_SIZE && data.readUInt32BE(12) === BLOCK_HASH;
}

/** The index of a whole buffer. */
export function chunkIndex(data: Uint8Array, params: ChunkParams = CHUNK_PARAMS): ChunkIndex {
  const indexer = new ChunkIndexer(params);
  indexer.update(data);
  return indexer.finish();
}

/** The index's bytes (the layout in this file's header). */
export function encodeChunkIndex(index: ChunkIndex): Buffer {
  checkParams(index.params);
  const n = index.chunks.length;
  const version = versionOf(index);
  const out = Buffer.alloc(HEADER + RECORD[version] * n + TRAILER);
  MAGIC.copy(out, 0);
  out[8] = version;
  out[9] = ALGORITHM;
  out.writeUInt32BE(index.params.min, 12);
  out.writeUInt32BE(index.params.normal, 16);
  out.writeUInt32BE(index.params.max, 20);
  out.writeBigUInt64BE(BigInt(index.size), 24);
  out.write(index.digest, 32, 32, "hex");
  out.writeUInt32BE(n, 64);
  let at = HEADER;
  let offset = 0;
  for (const chunk of index.chunks) {
    if (chunk.offset !== offset) throw new FormatError(`chunk at ${chunk.offset} does not follow the one ending at ${offset}`);
    out.writeUInt32BE(chunk.size, at);
    if (version === 2) out.writeUInt32BE(chunk.crc!, at + 4);
    out.write(chunk.digest, at + RECORD[version] - 32, 32, "hex");
    at += RECORD[version];
    offset += chunk.size;
  }
  if (offset !== index.size) throw new FormatError(`chunks cover ${offset} bytes of a ${index.size}-byte file`);
  createHash("sha256").update(out.subarray(0, at)).digest().copy(out, at);
  if (!index.blocks) return out;
  if (index.blocks.length !== n) throw new FormatError(`block hashes for ${index.blocks.length} chunks, ${n} expected`);
  const head = Buffer.alloc(16);
  BLOCKS_MAGIC.copy(head, 0);
  head.writeUInt32BE(BLOCK_SIZE, 8);
  head.writeUInt32BE(BLOCK_HASH, 12);
  return Buffer.concat([out, head, ...index.blocks]);
}

/** Read an index, refusing anything damaged, truncated, of another version or inconsistent. */
export function decodeChunkIndex(bytes: Uint8Array): ChunkIndex {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (data.length < HEADER + TRAILER) throw new FormatError("not a chunk index (no CRCHUNKS magic)");
  checkVersion(data);
  const version = data[8];
  const record = RECORD[version];
  const n = data.readUInt32BE(64);
  const end = HEADER + record * n;
  if (data.length < end + TRAILER) throw new FormatError(`chunk index of ${data.length} bytes, ${end + TRAILER} expected for ${n} chunks: truncated?`);
  if (!createHash("sha256").update(data.subarray(0, end)).digest().equals(data.subarray(end, end + TRAILER))) throw new FormatError("chunk index damaged: its checksum does not match");
  const params = { min: data.readUInt32BE(12), normal: data.readUInt32BE(16), max: data.readUInt32BE(20) };
  checkParams(params);
  const size = Number(data.readBigUInt64BE(24));
  if (!Number.isSafeInteger(size)) throw new FormatError(`chunk index: file size ${data.readBigUInt64BE(24)} too large`);
  const chunks: Chunk[] = new Array(n);
  let offset = 0;
  for (let i = 0, at = HEADER; i < n; i++, at += record) {
    const chunkSize = data.readUInt32BE(at);
    if (chunkSize === 0 || chunkSize > params.max) throw new FormatError(`chunk index: chunk ${i} has size ${chunkSize} (max ${params.max})`);
    chunks[i] = { offset, size: chunkSize, digest: data.toString("hex", at + record - 32, at + record) };
    if (version === 2) chunks[i].crc = data.readUInt32BE(at + 4);
    offset += chunkSize;
  }
  if (offset !== size) throw new FormatError(`chunk index: chunks cover ${offset} bytes of a ${size}-byte file`);
  const index: ChunkIndex = { params, size, digest: data.toString("hex", 32, 64), chunks };
  // The block section, when it came along whole (it is optional, and never trusted: hints).
  const rest = data.subarray(end + TRAILER);
  if (rest.length && checkBlocksHeader(rest)) {
    const offsets = blockOffsets(index);
    const last = chunks.length ? offsets[n - 1] + 2 * blockCount(chunks[n - 1].size) * BLOCK_HASH : end + TRAILER + 16;
    if (data.length === last) index.blocks = chunks.map((c, k) => Buffer.from(data.subarray(offsets[k], offsets[k] + 2 * blockCount(c.size) * BLOCK_HASH)));
  }
  return index;
}

/** Same split (so chunks of one file can be looked up among another's)? */
export function sameParams(a: ChunkParams, b: ChunkParams): boolean {
  return a.min === b.min && a.normal === b.normal && a.max === b.max;
}
