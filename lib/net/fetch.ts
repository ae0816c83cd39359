/**
 * fetchChunked(url, { seeds, out }): download a file that has a chunk index beside it
 * (URL.chunks, see formats/chunks.ts), reusing every chunk found in files already here —
 * bupdate's idea: a one-sided rsync against any static server that does HTTP ranges.
 *
 * 1. Read URL.chunks, and HEAD URL (its size must be the index's; its ETag pins the version).
 * 2. Resume: chunks a previous, interrupted fetch verified into OUT.part are hashed again
 *    in place and kept (partial.ts).
 * 3. Seeds: a seed is split the same way (seedscan.ts), and every chunk the new file needs
 *    is written into OUT.part at once, from the bytes just read: one read of each seed. A
 *    chunk found where the new file's should be is checked by its CRC-32 (index version 2),
 *    the others by their sha256; the whole file's hash checks the first kind (step 5).
 *    What the seed passes over (an edit) is downloaded meanwhile (fillGap). A seed whose
 *    own SEED.chunks sits beside it and splits alike is read by that index instead, after
 *    the download, in file order (copyPlanned); when that index is newer than the seed,
 *    its chunks are not hashed one by one: the whole file's hash checks them (step 5).
 * 4. The rest is downloaded: one position per distinct missing chunk, neighbours merged
 *    into one range, at most `maxRanges` ranges and `maxBytes` bytes a request, a few
 *    requests at once (after a first one alone: a server that ignores Range answers it with
 *    the whole file, which is then used instead of asking again). Every chunk is checked
 *    against its sha256 before it is written.
 * 5. The whole file is hashed (in order, as chunks are placed) and checked against the
 *    index's digest, then renamed to OUT; if it differs and chunks were taken unhashed (by
 *    their CRC-32, or by a seed's index), those are hashed now and the wrong ones downloaded.
 *
 * Faults: a dropped connection, a 5xx or wrong bytes are tried again with backoff (chunks
 * verified meanwhile are kept); a file that changed on the server (another ETag, another
 * size, another index) starts over against the new index with what is here as a seed;
 * when tries run out, a FetchError says what failed and what to do. OUT is never written
 * but by the final rename.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import type { IncomingMessage } from "node:http";
import { CrecipeError } from "../engine/errors.ts";
import { sha256Hex } from "../engine/hash.ts";
import { writeFileAtomic } from "../engine/state.ts";
import { type ByteRange, formatRange, multipartBoundary, MultipartReader, parseContentRange } from "../formats/byteranges.ts";
import { BLOCK_HASH, BLOCK_SIZE, blockCount, blockHash, blockOffsets, checkBlocksHeader, type ChunkIndex, decodeChunkIndex, mainLength, mainLengthFor, sameParams } from "../formats/chunks.ts";
import { client, type Client, consume, discard, readBody, TransientError } from "./http.ts";
import { expectedOf, piecesOf, type SeedBlock, type SeedChunk, SeedSplitter } from "./seedscan.ts";
import { HashBehind } from "./hashbehind.ts";
import { THREAD_BYTES } from "../engine/threads.ts";
import { packBits, partialPaths, type PartialPaths, readState, removePartial, unpackBits, writeState } from "./partial.ts";

/** A fetch that failed after its tries (the CLI exits 1). */
export class FetchError extends CrecipeError {
  /** A message, with the fix to print under it and the error that caused it. */
  constructor(message: string, options: { fix?: string; cause?: unknown } = {}) {
    super(message, options);
    this.name = "FetchError";
  }
}

/** The server's file is not the one the index we hold describes. */
class ChangedError extends Error {
  override name = "ChangedError";
}

/** Bytes that do not hash to what the index says. */
class WrongBytesError extends TransientError {
  constructor(readonly offset: number) {
    super(`wrong bytes for the chunk at offset ${offset}`);
    this.name = "WrongBytesError";
  }
}

/** Where fetchChunked() writes, what it reuses, and how hard it tries. */
export interface FetchOptions {
  /** Where the file goes (renamed into place once verified). */
  out: string;
  /** Files that may hold chunks of the new one (an older version, another layer). */
  seeds?: string[];
  /** Called as chunks arrive (often: throttle what you draw). */
  onProgress?: (progress: FetchProgress) => void;
  /** Aborting it stops the fetch; what was verified stays in OUT.part for the next one. */
  signal?: AbortSignal;
  /** Failed tries in a row, without a chunk gained, before giving up (default 4). */
  retries?: number;
  /** Delay before the first retry, doubled at each (default 200 ms). */
  backoffMs?: number;
  /** Ranges in one request (default 32). */
  maxRanges?: number;
  /** Bytes asked in one request (default 16 MiB): a failure costs at most that much. */
  maxBytes?: number;
  /** Requests at once (default 4). */
  concurrency?: number;
  /** Merge two missing ranges this close (default 0: a gap is at least one chunk we have). */
  mergeGap?: number;
  /** Times the server's file may change under a fetch before it gives up (default 3). */
  restarts?: number;
  /**
   * Keep the index as OUT.chunks beside the file (default true): a later fetch that uses
   * OUT as a seed reads the chunks it needs by that index instead of chunking all of OUT.
   */
  keepIndex?: boolean;
}

/** How far a fetch is, in bytes, by where they came from. */
export interface FetchProgress {
  /** The file's size. */
  size: number;
  /** Bytes in place so far (any source). */
  done: number;
  /** Bytes taken from seeds. */
  reused: number;
  /** Bytes a previous, interrupted fetch had verified. */
  resumed: number;
  /** Bytes of chunks that came over the network. */
  fetched: number;
  /** Every byte received: index, bodies (with multipart framing), wasted retries. */
  downloaded: number;
}

/** What a finished fetch did: the bytes by source, the requests, the time. */
export interface FetchReport extends FetchProgress {
  /** The URL fetched. */
  url: string;
  /** The file written. */
  out: string;
  /** sha256 hex of the file. */
  digest: string;
  /** Chunks in the file's index. */
  chunks: number;
  /** Size of the index downloaded (included in `downloaded`). */
  indexBytes: number;
  /** HTTP requests made for the file's bytes. */
  requests: number;
  /** Tries that failed and were made again. */
  retries: number;
  /** Wall-clock time of the whole fetch. */
  seconds: number;
}

const KB = 1000;
/** 1234567 → "1.2 MB" (decimal units, as download sizes are usually shown). */
export function formatBytes(n: number): string {
  if (n < KB) return `${n} B`;
  if (n < KB * KB) return `${(n / KB).toFixed(1)} kB`;
  if (n < KB * KB * KB) return `${(n / KB / KB).toFixed(1)} MB`;
  return `${(n / KB / KB / KB).toFixed(2)} GB`;
}

/**
 * Download `url` into `options.out`, reusing the chunks of `options.seeds`. The server
 * must have URL.chunks beside the file (`chunks(target)` makes it) and may be any static
 * HTTP server; `crecipe serve` is one.
 *
 * ```ts
 * const report = await fetchChunked("http://127.0.0.1:8000/app.layer", { seeds: ["old/app.layer"], out: "app.layer" });
 * console.log(`${report.fetched} bytes downloaded, ${report.reused} reused`);
 * ```
 */
export async function fetchChunked(url: string, options: FetchOptions): Promise<FetchReport> {
  const started = performance.now();
  const paths = partialPaths(options.out);
  const http = client(options.concurrency ?? 4);
  const totals = { downloaded: 0, index: 0, requests: 0, retries: 0, reused: 0, resumed: 0, fetched: 0 };
  // With seeds, the file is mostly written from them faster than it can be hashed beside:
  // a thread hashes it instead, started now so that it is up (~80 ms) when the seeds are read.
  const hasher = options.seeds?.length ? HashBehind.start(paths.part) : undefined;
  try {
    for (let restart = 0; ; restart++) {
      const remote = await readIndex(http, url, options, totals);
      const job = new Job(http, url, remote, options, paths, totals, restart === 0 ? hasher : undefined);
      try {
        const digest = await job.run();
        const seconds = (performance.now() - started) / 1000;
        return {
          url, out: options.out, digest, chunks: remote.index.chunks.length, size: remote.index.size, done: remote.index.size,
          reused: totals.reused, resumed: totals.resumed, fetched: totals.fetched, downloaded: totals.downloaded,
          indexBytes: totals.index, requests: totals.requests, retries: totals.retries, seconds,
        };
      } catch (error) {
        if (!(error instanceof ChangedError)) throw error;
        if (restart >= (options.restarts ?? 3)) {
          throw new FetchError(`${url} changed on the server ${restart + 1} times during the download (${error.message})`, {
            fix: `run the same fetch again once the file stops changing; the chunks verified so far are kept in ${paths.part}`,
          });
        }
        await sleep(backoff(options, restart), options.signal);
      }
    }
  } finally {
    http.close();
    hasher?.stop();
  }
}

interface Totals {
  downloaded: number;
  index: number;
  requests: number;
  retries: number;
  reused: number;
  resumed: number;
  fetched: number;
}

interface Remote {
  index: ChunkIndex;
  /** The index's main part (what the id names and OUT.part.chunks keeps). */
  bytes: Buffer;
  /** sha256 of the index bytes: names the version a partial file follows. */
  id: string;
  etag?: string;
  /** The index file's whole length when it has a block section to read hints from. */
  blocksEnd?: number;
}

const INDEX_LIMIT = 256 << 20;
/** The least first read of an index: its header, which says how long its main part is. */
const INDEX_HEADER = 68;

/**
 * The main part of URL.chunks, by one range request when `guess` (bytes) covers it, else
 * two: the first says how long it is, the second reads the rest. The block section after
 * it is read later, and only where it is needed.
 */
async function readMainIndex(http: Client, indexUrl: string, signal: AbortSignal | undefined, totals: { downloaded: number; index: number }, guess = INDEX_HEADER) {
  const get = async (range: string) => {
    const res = await http.request(indexUrl, { headers: { Range: range }, signal });
    if (res.statusCode === 404) {
      discard(res);
      throw new FetchError(`${indexUrl}: no chunk index beside the file (404)`, {
        fix: `build one beside it (chunks(target) in the recipe makes NAME.chunks) and serve it with the file`,
      });
    }
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      discard(res);
      throw new TransientError(`${indexUrl}: HTTP ${res.statusCode}`);
    }
    const body = await readBody(res, INDEX_LIMIT, signal);
    totals.downloaded += body.length;
    totals.index += body.length;
    const total = res.statusCode === 200 ? body.length : parseContentRange(res.headers["content-range"])?.total;
    return { body, total, whole: res.statusCode === 200 };
  };
  let { body, total, whole } = await get(`bytes=0-${Math.max(INDEX_HEADER, guess) - 1}`);
  let main: number;
  try {
    main = mainLength(body.subarray(0, INDEX_HEADER));
  } catch (error) {
    throw new TransientError(`${indexUrl}: ${(error as Error).message}`);
  }
  if (body.length < main && !whole) {
    const rest = await get(`bytes=${body.length}-${main - 1}`);
    body = Buffer.concat([body, rest.body.subarray(0, main - body.length)]);
  }
  return { body, main, total, whole };
}

/** GET URL.chunks and HEAD URL, tried again on transient failures. */
async function readIndex(http: Client, url: string, options: FetchOptions, totals: Totals): Promise<Remote> {
  const indexUrl = `${url}.chunks`;
  // The seeds' size says about how long the main part is: asked for at once, it is one
  // round trip instead of two, for a few KB of block hints read with it for nothing.
  const sizes = (options.seeds ?? []).map((seed) => fs.statSync(seed, { throwIfNoEntry: false })?.size ?? 0);
  const guess = Math.min(mainLengthFor(Math.max(0, ...sizes)), INDEX_LIMIT);
  for (let failures = 0; ; failures++) {
    // The file's HEAD goes out beside the index's reads: one round trip less before the download.
    const heading = http.request(url, { method: "HEAD", signal: options.signal });
    heading.then(discard, () => {});
    try {
      const read = await readMainIndex(http, indexUrl, options.signal, totals, guess);
      let index: ChunkIndex;
      try {
        index = decodeChunkIndex(read.whole ? read.body : read.body.subarray(0, read.main));
      } catch (error) {
        throw new TransientError(`${indexUrl}: ${(error as Error).message}`);
      }
      const bytes = Buffer.from(read.body.subarray(0, read.main));
      const head = await heading;
      const noHead = head.statusCode === 405 || head.statusCode === 501; // then no ETag, no early size check
      if (head.statusCode !== 200 && !noHead) throw new TransientError(`${url}: HTTP ${head.statusCode} to HEAD`);
      const length = Number(head.headers["content-length"]);
      if (!noHead && head.headers["content-length"] !== undefined && length !== index.size) {
        throw new TransientError(`${url} has ${length} bytes, its index describes ${index.size}: the index is stale or the file is being replaced`);
      }
      const etag = !noHead && typeof head.headers.etag === "string" && !head.headers.etag.startsWith("W/") ? head.headers.etag : undefined;
      const blocksEnd = !index.blocks && read.total !== undefined && read.total > read.main ? read.total : undefined;
      return { index, bytes, id: sha256Hex(bytes), etag, blocksEnd };
    } catch (error) {
      if (!(error instanceof TransientError)) throw error;
      if (failures >= (options.retries ?? 4)) {
        throw new FetchError(`cannot read ${url} and its index: ${error.message} (${failures + 1} tries)`, {
          fix: "check the URL and the server; the index must sit beside the file as URL.chunks, built from the same file",
        });
      }
      totals.retries++;
      await sleep(backoff(options, failures), options.signal);
    }
  }
}

function backoff(options: FetchOptions, failures: number): number {
  return (options.backoffMs ?? 200) * 2 ** failures;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => (signal?.removeEventListener("abort", onAbort), resolve()), ms);
    const onAbort = () => (clearTimeout(timer), reject(signal!.reason));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A chunk next to one found in a seed, and where that one is. */
interface Edge {
  k: number;
  forward: boolean;
  span: SeedSpan;
}

/** A chunk's place in a seed file. */
interface SeedSpan {
  file: string;
  offset: number;
  size: number;
}

/** The part of a chunk to download, the rest having come from seeds by the block hints. */
interface Partial_ {
  from: number;
  to: number;
  buffer?: Buffer;
  /** Bytes of it taken from seeds. */
  seeded: number;
}

/** A request: ranges of the file, and the chunks (indexes) they are for. */
interface Batch {
  ranges: ByteRange[];
  chunks: number[];
}

const BLOCK = 1 << 20;

/** One download against one version of the remote index. */
class Job {
  private readonly index: ChunkIndex;
  private readonly done: Uint8Array;
  /** Chunks not in place yet, by digest: a chunk that occurs twice is fetched once. */
  private readonly positions = new Map<string, number[]>();
  private fd = -1;
  private lastSave = 0;
  private wholeFile = false;
  private readonly stop = new AbortController();
  /** Where chunks placed from a seed came from (for the block hints next to them). */
  private readonly sources = new Map<number, SeedSpan>();
  /** Chunks to download only part of (the rest came from a seed, by the block hints). */
  private readonly need = new Map<number, Partial_>();
  /**
   * Chunks a seed's own index (or the previous OUT.part's) says it holds, by digest: where,
   * and the positions that want them. They are copied after the download, in file order (copyPlanned), so the
   * file's hash runs in order and nothing is read back.
   */
  private readonly planned = new Map<string, { span: SeedSpan; trusted: boolean; resumed: boolean; list: number[] }>();
  /**
   * Chunks placed from a seed without hashing them (by a trusted index of it, or found by
   * their CRC-32 where they were looked for): the whole file's hash checks them (checkTrusted).
   */
  private readonly trusted: number[] = [];
  /**
   * The whole file's sha256 so far, over chunks 0 … hashed-1 (hashInOrder): here, or by
   * `hasher` on another thread, told how far the file is final (large files).
   */
  private fileHash = createHash("sha256");
  private hashed = 0;
  private readBack?: Buffer;
  private hasher?: HashBehind;
  /** The whole file's sha256 once known (wholeDigest). */
  private whole?: string;

  constructor(
    private readonly http: Client,
    private readonly url: string,
    private readonly remote: Remote,
    private readonly options: FetchOptions,
    private readonly paths: PartialPaths,
    private readonly totals: Totals,
    hasher?: HashBehind,
  ) {
    this.index = remote.index;
    if (hasher && this.index.size >= THREAD_BYTES) this.hasher = hasher;
    else hasher?.stop();
    this.done = new Uint8Array(this.index.chunks.length);
    // Counted again for this version of the file: what an earlier one placed is "resumed" now.
    totals.reused = totals.resumed = totals.fetched = 0;
    options.signal?.addEventListener("abort", () => this.stop.abort(options.signal!.reason), { once: true });
  }

  async run(): Promise<string> {
    try {
      // A seed that is not there fails the fetch before anything is written beside OUT.
      for (const seed of this.options.seeds ?? []) seedStat(seed);
      await this.openPart();
      for (let k = 0; k < this.index.chunks.length; k++) if (!this.done[k]) this.want(k);
      if (fs.existsSync(this.paths.old)) this.useOldPart();
      for (const seed of this.options.seeds ?? []) {
        if (this.positions.size === 0) break;
        await this.useSeed(seed);
      }
      await this.gaps.catch(() => {});
      if (this.gapFailure) throw this.gapFailure;
      this.saveState(true);
      await this.refine();
      await this.download();
      if (await this.copyPlanned()) await this.download(); // a planned chunk the seed did not hold after all
      this.saveState(true);
      if (this.trusted.length && (await this.wholeDigest()) !== this.index.digest && await this.checkTrusted()) {
        await this.download();
        this.saveState(true);
      }
      return await this.finish();
    } catch (error) {
      this.stop.abort(error);
      if (this.fd >= 0) this.saveState(true);
      throw error;
    } finally {
      this.hasher?.stop();
      if (this.fd >= 0) fs.closeSync(this.fd);
      this.fd = -1;
    }
  }

  // --- the partial file ---------------------------------------------------------------

  /** Open OUT.part: the previous one when it follows this index (its chunks checked again), else a new one. */
  private async openPart(): Promise<void> {
    const { paths, index } = this;
    const state = readState(paths.state);
    const partSize = fs.statSync(paths.part, { throwIfNoEntry: false })?.size;
    // The same index (from whatever URL) names the same file: its verified chunks are good.
    if (state && state.index === this.remote.id && partSize === index.size) {
      this.fd = fs.openSync(paths.part, "r+");
      const claimed = unpackBits(state.done, index.chunks.length);
      const buffer = Buffer.allocUnsafe(index.params.max);
      for (const [k, chunk] of index.chunks.entries()) {
        if (!claimed[k]) continue;
        const bytes = readAt(this.fd, buffer, chunk.offset, chunk.size);
        if (bytes && sha256Hex(bytes) === chunk.digest) {
          this.done[k] = 1;
          this.hashInOrder(k, bytes);
          this.totals.resumed += chunk.size;
        }
        await this.breathe();
      }
      this.progress();
      return;
    }
    if (state && partSize !== undefined && fs.existsSync(paths.index)) {
      // Another version: what was verified of it may still be useful, as a seed.
      fs.renameSync(paths.part, paths.old);
      fs.renameSync(paths.index, paths.oldIndex);
      writeState(`${paths.old}.json`, state);
    }
    removePartial(paths, true);
    this.fd = fs.openSync(paths.part, "w+");
    fs.ftruncateSync(this.fd, index.size);
    fs.writeFileSync(paths.index, this.remote.bytes);
    this.saveState(true);
  }

  private saveState(force = false): void {
    const now = performance.now();
    if (!force && now - this.lastSave < 200) return;
    this.lastSave = now;
    writeState(this.paths.state, { version: 1, url: this.url, index: this.remote.id, done: packBits(this.done) });
  }

  /**
   * Put verified chunk bytes at every position that wants them; `from`: where in a seed
   * they are; `unhashed`: checked by less than their sha256, so by the whole file's (checkTrusted).
   */
  private place(digest: string, bytes: Buffer | Buffer[], from?: SeedSpan, unhashed = false): number {
    const list = this.positions.get(digest);
    if (!list) return 0;
    this.positions.delete(digest);
    if (unhashed) for (const k of list) if (!this.done[k]) this.trusted.push(k);
    // A chunk of a seed may be in two pieces (the blocks it was read in): written and
    // hashed as they are, not copied into one.
    const parts = Array.isArray(bytes) ? bytes : [bytes];
    let placed = 0;
    for (const k of list) {
      if (this.done[k]) continue;
      let at = this.index.chunks[k].offset;
      for (const part of parts) {
        writeAt(this.fd, part, at);
        at += part.length;
      }
      this.done[k] = 1;
      this.hashInOrder(k, parts);
      if (from) this.sources.set(k, from);
      this.need.delete(k);
      placed += at - this.index.chunks[k].offset;
    }
    return placed;
  }

  // --- seeds --------------------------------------------------------------------------

  /** Position k is wanted (again): in its digest's list of positions. */
  private want(k: number): void {
    const { digest } = this.index.chunks[k];
    const list = this.positions.get(digest);
    if (list) list.push(k);
    else this.positions.set(digest, [k]);
  }

  /**
   * A previous OUT.part of another version: its verified chunks, at the offsets its index
   * gives, copied (and hashed again) with the planned ones, counted as resumed.
   */
  private useOldPart(): void {
    const { paths } = this;
    try {
      const index = decodeChunkIndex(fs.readFileSync(paths.oldIndex));
      const state = readState(`${paths.old}.json`);
      if (state && index.size === fs.statSync(paths.old).size) {
        const bits = unpackBits(state.done, index.chunks.length);
        this.planCopies(paths.old, index.chunks.filter((_, k) => bits[k]), { trusted: false, resumed: true });
      }
    } catch { /* a damaged leftover: nothing to reuse */ }
    // Removed with the other partial files once the download is complete (hints and copyPlanned read it until then).
  }

  /** A seed file: by its own index when it has one that splits alike, else chunked here. */
  private async useSeed(seed: string): Promise<void> {
    const stat = seedStat(seed);
    let own: ChunkIndex | undefined;
    try {
      own = decodeChunkIndex(fs.readFileSync(`${seed}.chunks`));
      if (own.size !== stat.size || !sameParams(own.params, this.index.params)) own = undefined;
    } catch { /* none, or not usable */ }
    if (own) {
      // Its index is newer than its bytes: trusted, and left to the whole file's hash to check.
      this.planCopies(seed, own.chunks, { trusted: fs.statSync(`${seed}.chunks`).mtimeMs >= stat.mtimeMs, resumed: false });
      return;
    }
    const reused = await this.scanSeed(seed); // downloads started meanwhile count too: not `+= await`
    this.totals.reused += reused;
  }

  /**
   * Chunks `file` holds by an index of it, those the new file still wants: copied after the
   * download (copyPlanned). `trusted`: not hashed one by one; `resumed`: counted so.
   */
  private planCopies(file: string, chunks: readonly { offset: number; size: number; digest: string }[], how: { trusted: boolean; resumed: boolean }): void {
    for (const c of chunks) {
      const list = this.positions.get(c.digest);
      if (!list || c.size > this.index.params.max) continue;
      const span = { file, offset: c.offset, size: c.size };
      this.positions.delete(c.digest);
      this.planned.set(c.digest, { span, list, ...how });
      for (const k of list) this.sources.set(k, span);
    }
  }

  /**
   * Copy the planned chunks, in file order (the download has placed the rest, so the
   * file's hash never waits). Each is hashed first unless its seed's index is trusted.
   * Whether some were not as planned (back in `positions`, to download).
   */
  private async copyPlanned(): Promise<boolean> {
    const order = [...this.planned.entries()].sort((a, b) => a[1].list[0] - b[1].list[0]);
    this.planned.clear();
    const buffer = Buffer.allocUnsafe(this.index.params.max);
    const fds = new Map<string, number>();
    let missed = false;
    try {
      for (const [digest, { span, trusted, resumed, list }] of order) {
        this.positions.set(digest, list);
        let fd = fds.get(span.file);
        if (fd === undefined) fds.set(span.file, (fd = fs.openSync(span.file, "r")));
        const bytes = readAt(fd, buffer, span.offset, span.size);
        if (bytes && (trusted || sha256Hex(bytes) === digest)) {
          const placed = this.place(digest, bytes, span, trusted);
          if (resumed) this.totals.resumed += placed;
          else this.totals.reused += placed;
        } else missed = true;
        this.progress();
        await this.breathe();
      }
    } finally {
      for (const fd of fds.values()) fs.closeSync(fd);
    }
    return missed;
  }

  /**
   * The whole file's sha256, once every chunk is in place (what was not hashed in order is
   * read back), else undefined. A hashing thread that failed is replaced by hashing here.
   */
  private async wholeDigest(): Promise<string | undefined> {
    if (this.whole) return this.whole;
    this.catchUp();
    if (this.hashed !== this.index.chunks.length) return undefined;
    if (this.hasher) {
      try {
        return (this.whole = await this.hasher.digest(this.index.size));
      } catch {
        this.rehash();
        return await this.wholeDigest();
      }
    }
    return (this.whole = this.fileHash.digest("hex"));
  }

  /** Hash the whole file again from its start, here. */
  private rehash(): void {
    this.hasher?.stop();
    this.hasher = undefined;
    this.whole = undefined;
    this.fileHash = createHash("sha256");
    this.hashed = 0;
  }

  /**
   * The whole file is not what the index says, and some chunks came unhashed from a seed
   * that was trusted: hash them now, and give the ones that differ back to the download.
   * The file is hashed again from its start. Whether any was given back.
   */
  private async checkTrusted(): Promise<boolean> {
    const buffer = Buffer.allocUnsafe(this.index.params.max);
    let bad = false;
    for (const k of this.trusted.splice(0)) {
      const chunk = this.index.chunks[k];
      const bytes = readAt(this.fd, buffer, chunk.offset, chunk.size);
      if (bytes && sha256Hex(bytes) === chunk.digest) continue;
      bad = true;
      this.done[k] = 0;
      this.totals.reused -= chunk.size;
      this.want(k);
      await this.breathe();
    }
    this.rehash();
    return bad;
  }

  /**
   * Chunk k was just placed from a seed while chunks before it, the file's hash waiting
   * for them, are still missing: the seed passed over them (an edit). They are downloaded
   * now, while the seed is read, not after it, so the hash does not wait until the end and
   * read back all that was written since. Should the seed hold them further on after all
   * (moved, not edited), their bytes were downloaded for nothing: at most 1 MiB, or 1 % of
   * the file, is downloaded this way.
   */
  private fillGap(k: number): void {
    if (k <= this.hashed || this.done[this.hashed]) return;
    const budget = Math.max(1 << 20, this.index.size / 100);
    for (let j = Math.max(this.hashed, this.gapFrom); j < k; j++) {
      // One position per digest (its first): a chunk that occurs twice is downloaded once.
      if (this.done[j] || this.positions.get(this.index.chunks[j].digest)?.[0] !== j || this.gapBytes + this.index.chunks[j].size > budget) continue;
      this.gapBytes += this.index.chunks[j].size;
      this.gapChunks.push(j);
    }
    this.gapFrom = Math.max(this.gapFrom, k);
    if (this.gapChunks.length === 0 || this.gapsRunning) return;
    // One request at a time: the gaps found while it runs go together in the next.
    this.gapsRunning = true;
    this.gaps = (async () => {
      try {
        for (let gap; (gap = this.gapChunks.splice(0).filter((j) => this.wants(j))).length;) {
          await this.refine(gap);
          await this.download(gap.filter((j) => this.wants(j)));
        }
      } finally {
        this.gapsRunning = false;
      }
    })();
    this.gaps.catch((error) => (this.gapFailure ??= error)); // thrown after the seeds (run)
  }

  private gaps = Promise.resolve();
  private gapFailure: unknown;
  private gapsRunning = false;
  private gapChunks: number[] = [];
  private gapFrom = 0;
  private gapBytes = 0;

  /** A chunk of seed `file`, as it is split: placed if the new file wants it, and what the seed passed over before it downloaded (fillGap). */
  private fromSeed(file: string, chunk: SeedChunk): number {
    const first = this.positions.get(chunk.digest)?.[0];
    if (first === undefined) return 0;
    const bytes = chunk.bytes();
    if (bytes.reduce((n, piece) => n + piece.length, 0) !== chunk.size) return 0; // not all of it in the blocks read (a short read): downloaded
    const placed = this.place(chunk.digest, bytes, { file, offset: chunk.offset, size: chunk.size }, chunk.weak);
    this.fillGap(first);
    return placed;
  }

  /**
   * Read a seed once: split it (SeedSplitter), and place the chunks the new file needs
   * straight from the blocks just read.
   */
  private async scanSeed(file: string): Promise<number> {
    const splitter = new SeedSplitter(this.index.params, expectedOf(this.index.chunks));
    const fd = fs.openSync(file, "r");
    let placed = 0;
    let start = 0; // the next chunk's offset in the seed
    // This block and the one before (a block is at least as long as the index's longest
    // chunk, so a chunk the new file wants is in two at most, and so are the splitter's
    // pieces of the chunk it looks for): three buffers in turn, read into when neither is
    // either. Not a new one each time: fresh memory costs a page fault for every 4 KiB read
    // into it (as much as the read itself here). A longer chunk the split cuts is no chunk
    // of the new file's, and is not read (fromSeed).
    const blockSize = this.index.chunks.reduce((n, c) => Math.max(n, c.size), BLOCK);
    const buffers = [0, 1, 2].map(() => Buffer.allocUnsafeSlow(blockSize));
    let before: SeedBlock = { at: 0, data: Buffer.alloc(0) };
    let block = before;
    const take = ({ ends, digests, weak }: { ends: number[]; digests: string[]; weak: boolean[] }) => {
      for (let i = 0; i < ends.length; i++) {
        const offset = start;
        const size = ends[i] - offset;
        placed += this.fromSeed(file, { offset, size, digest: digests[i], weak: weak[i], bytes: () => piecesOf([before, block], offset, size) });
        start = ends[i];
      }
    };
    try {
      for (let at = 0, turn = 0; ; turn = (turn + 1) % 3) {
        const data = buffers[turn];
        const n = fs.readSync(fd, data, 0, blockSize, null);
        if (n === 0) break;
        before = block;
        block = { at, data: data.subarray(0, n) };
        at += n;
        take(splitter.push(block.data));
        this.progress();
        await this.breathe();
        if (this.positions.size === 0) return placed;
      }
      take(splitter.finish());
    } finally {
      fs.closeSync(fd);
    }
    return placed;
  }

  // --- the network --------------------------------------------------------------------

  /** The requests for what is still missing: one position per distinct chunk, in file order. */
  private plan(chunks: number[]): Batch[] {
    const maxRanges = this.options.maxRanges ?? 32;
    const maxBytes = this.options.maxBytes ?? 16 << 20;
    const gap = this.options.mergeGap ?? 0;
    const batches: Batch[] = [];
    let batch: Batch = { ranges: [], chunks: [] };
    let bytes = 0;
    for (const k of [...chunks].sort((a, b) => a - b)) {
      const chunk = this.index.chunks[k];
      const partial = this.need.get(k);
      const offset = chunk.offset + (partial?.from ?? 0);
      const size = (partial?.to ?? chunk.size) - (partial?.from ?? 0);
      const last = batch.ranges.at(-1);
      if (last && offset - last.end - 1 <= gap && bytes + size <= maxBytes) {
        bytes += offset + size - 1 - last.end;
        last.end = offset + size - 1;
      } else {
        if (batch.ranges.length >= maxRanges || (batch.chunks.length && bytes + size > maxBytes)) {
          batches.push(batch);
          batch = { ranges: [], chunks: [] };
          bytes = 0;
        }
        batch.ranges.push({ start: offset, end: offset + size - 1 });
        bytes += size;
      }
      batch.chunks.push(k);
    }
    if (batch.chunks.length) batches.push(batch);
    return batches;
  }

  /** Whether a request was made (the first is made alone). */
  private requested = false;

  /**
   * Block hints: where a run of missing chunks follows (or precedes) a chunk found in a
   * seed, the bytes after (before) it in that seed are compared, 4 KiB block by block,
   * with the hashes the index's block section gives for the edge chunk; what matches is
   * taken from the seed and only the rest is downloaded. The chunk's sha256 is checked
   * whole once assembled; a mismatch falls back to downloading it whole.
   */
  private async refine(only?: number[]): Promise<void> {
    const { chunks } = this.index;
    const fetching = new Set(only ?? [...this.positions.values()].map((list) => list[0]));
    let edges: Edge[] = [];
    for (const k of fetching) {
      const before = this.sources.get(k - 1);
      const after = this.sources.get(k + 1);
      if (before) edges.push({ k, forward: true, span: before });
      if (after) edges.push({ k, forward: false, span: after });
    }
    const matched = new Map<number, { prefix: number; suffix: number; before?: SeedSpan; after?: SeedSpan }>();
    // A chunk rebuilt whole from its neighbour's side passes the edge on to the next one.
    for (let round = 0; edges.length && round < 8; round++) {
      const hints = await this.blockHints(edges.map((e) => ({ k: e.k, forward: e.forward })));
      if (!hints) return this.applyRefined(matched);
      const next: Edge[] = [];
      for (const edge of edges) {
        const hashes = hints.get(`${edge.k}:${edge.forward}`);
        if (!hashes) continue;
        const bytes = this.matchBlocks(edge, hashes);
        if (bytes === 0) continue;
        const m = matched.get(edge.k) ?? { prefix: 0, suffix: 0 };
        if (edge.forward) Object.assign(m, { prefix: bytes, before: edge.span });
        else Object.assign(m, { suffix: bytes, after: edge.span });
        matched.set(edge.k, m);
        const size = chunks[edge.k].size;
        const onward = edge.forward ? edge.k + 1 : edge.k - 1;
        if (bytes === size && fetching.has(onward) && !matched.has(onward)) {
          const span = edge.forward
            ? { file: edge.span.file, offset: edge.span.offset + edge.span.size, size }
            : { file: edge.span.file, offset: edge.span.offset - size, size };
          next.push({ k: onward, forward: edge.forward, span });
        }
      }
      edges = next;
    }
    this.applyRefined(matched);
  }

  /** Bytes of chunk `edge.k` that the seed holds next to `edge.span`, by its block hashes. */
  private matchBlocks(edge: Edge, hashes: Buffer): number {
    const size = this.index.chunks[edge.k].size;
    const block = Buffer.allocUnsafe(BLOCK_SIZE);
    const fd = fs.openSync(edge.span.file, "r");
    let bytes = 0;
    try {
      for (let j = 0; j < blockCount(size); j++) {
        const length = Math.min(BLOCK_SIZE, size - j * BLOCK_SIZE);
        // forward: the blocks right after the chunk before; backward: right before the chunk after.
        const at = edge.forward ? edge.span.offset + edge.span.size + j * BLOCK_SIZE : edge.span.offset - j * BLOCK_SIZE - length;
        if (at < 0) break;
        const read = readAt(fd, block, at, length);
        if (!read || !blockHash(read).equals(hashes.subarray(j * BLOCK_HASH, (j + 1) * BLOCK_HASH))) break;
        bytes += length;
      }
    } finally {
      fs.closeSync(fd);
    }
    return bytes;
  }

  /** Chunks rebuilt whole are placed (once their sha256 matches); the others wait for their middle. */
  private applyRefined(matched: Map<number, { prefix: number; suffix: number; before?: SeedSpan; after?: SeedSpan }>): void {
    for (const [k, m] of matched) {
      const chunk = this.index.chunks[k];
      if (!this.wants(k)) continue;
      const prefix = Math.min(m.prefix, chunk.size);
      const suffix = Math.min(m.suffix, chunk.size - prefix);
      const buffer = Buffer.allocUnsafe(chunk.size);
      if (prefix) copyFrom(m.before!.file, m.before!.offset + m.before!.size, buffer, 0, prefix);
      if (suffix) copyFrom(m.after!.file, m.after!.offset - suffix, buffer, chunk.size - suffix, suffix);
      if (prefix + suffix === chunk.size) {
        if (sha256Hex(buffer) === chunk.digest) {
          this.totals.reused += this.place(chunk.digest, buffer);
          continue;
        }
        this.need.delete(k);
        continue;
      }
      this.need.set(k, { from: prefix, to: chunk.size - suffix, buffer, seeded: prefix + suffix });
    }
  }

  /** The forward or backward block hashes of some chunks, from the index's block section (one request, or a few). */
  private async blockHints(wanted: { k: number; forward: boolean }[]): Promise<Map<string, Buffer> | undefined> {
    const { index } = this;
    const out = new Map<string, Buffer>();
    const where = (k: number, forward: boolean, offsets: number[]) => {
      const length = blockCount(index.chunks[k].size) * BLOCK_HASH;
      const start = offsets[k] + (forward ? 0 : length);
      return { start, end: start + length - 1 };
    };
    const offsets = blockOffsets(index);
    if (index.blocks) {
      for (const w of wanted) {
        const r = where(w.k, w.forward, offsets);
        const base = offsets[w.k];
        out.set(`${w.k}:${w.forward}`, index.blocks[w.k].subarray(r.start - base, r.end + 1 - base));
      }
      return out;
    }
    if (this.remote.blocksEnd === undefined) return undefined;
    const headerAt = offsets.length ? offsets[0] - 16 : 0;
    const ranges = [{ start: headerAt, end: headerAt + 15, key: "" }, ...wanted.map((w) => ({ ...where(w.k, w.forward, offsets), key: `${w.k}:${w.forward}` }))]
      .sort((a, b) => a.start - b.start);
    if (ranges.at(-1)!.end >= this.remote.blocksEnd) return undefined;
    // Neighbours merged into one range (a server may merge them anyway), then sliced.
    const spans: ByteRange[] = [];
    for (const r of ranges) {
      const last = spans.at(-1);
      if (last && r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
      else spans.push({ start: r.start, end: r.end });
    }
    const maxRanges = this.options.maxRanges ?? 32;
    try {
      const got = new Map<number, Buffer>();
      for (let i = 0; i < spans.length; i += maxRanges) {
        for (const [start, bytes] of await this.readRanges(`${this.url}.chunks`, spans.slice(i, i + maxRanges))) got.set(start, bytes);
      }
      for (const r of ranges) {
        const span = spans.find((p) => p.start <= r.start && r.end <= p.end)!;
        const bytes = got.get(span.start)?.subarray(r.start - span.start, r.end + 1 - span.start);
        if (!bytes || bytes.length !== r.end - r.start + 1) return undefined;
        if (r.key === "") {
          if (!checkBlocksHeader(bytes)) return undefined;
        } else out.set(r.key, bytes);
      }
    } catch (error) {
      if (this.stop.signal.aborted) throw error;
      return undefined; // hints are an optimisation: without them, whole chunks
    }
    return out;
  }

  /** Small ranges of a file, by one request: start → bytes. */
  private async readRanges(url: string, ranges: ByteRange[]): Promise<Map<number, Buffer>> {
    const res = await this.http.request(url, { headers: { Range: formatRange(ranges) }, signal: this.stop.signal });
    const got = new Map<number, Buffer>();
    if (res.statusCode !== 206) {
      discard(res);
      throw new TransientError(`HTTP ${res.statusCode}`);
    }
    const boundary = multipartBoundary(res.headers["content-type"]);
    let current: Buffer[] = [];
    let start = -1;
    const flush = () => start >= 0 && got.set(start, Buffer.concat(current));
    const reader = boundary
      ? new MultipartReader(boundary, {
        part: (r) => (flush(), (start = r.start), (current = [])),
        data: (bytes) => current.push(Buffer.from(bytes)),
      })
      : undefined;
    if (!reader) start = parseContentRange(res.headers["content-range"])?.start ?? -1;
    await consume(res, (data) => {
      this.totals.downloaded += data.length;
      this.totals.index += data.length;
      if (reader) reader.push(data);
      else current.push(Buffer.from(data));
    }, this.stop.signal);
    reader?.end();
    flush();
    return got;
  }

  /** Download what is missing (of `only`, if given). */
  private async download(only?: number[]): Promise<void> {
    const missing = only ?? [...this.positions.values()].map((list) => list[0]);
    if (missing.length === 0) return;
    const queue = this.plan(missing);
    // The first request alone: a server that ignores Range sends the whole file to it.
    if (!this.requested) {
      const before = this.totals.requests;
      await this.withRetries(queue.shift()!, queue);
      this.requested = this.totals.requests > before;
    }
    const workers = Array.from({ length: Math.min(this.options.concurrency ?? 4, queue.length) }, async () => {
      for (let batch; (batch = queue.shift());) await this.withRetries(batch, queue);
    });
    const results = await Promise.allSettled(workers);
    const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
    if (failed) throw failed.reason;
  }

  /**
   * Run one request, trying again (with backoff) while it fails; a try that gained chunks
   * resets the count of failures.
   */
  private async withRetries(first: Batch, queue: Batch[]): Promise<void> {
    let batch = this.remaining(first, queue);
    for (let failures = 0; batch;) {
      if (this.stop.signal.aborted) throw this.stop.signal.reason;
      const before = this.totals.fetched;
      try {
        await this.request(batch);
        batch = this.remaining(batch, queue);
        if (batch) throw new TransientError("the answer left chunks out");
      } catch (error) {
        if (!(error instanceof TransientError)) {
          this.stop.abort(error);
          throw error;
        }
        if (error instanceof WrongBytesError) await this.checkIndexUnchanged();
        if (this.totals.fetched > before) failures = 0;
        else failures++;
        batch = this.remaining(batch!, queue);
        if (!batch) return;
        if (failures > (this.options.retries ?? 4)) {
          const stopped = new FetchError(`${this.url}: ${error.message} (${failures} tries in a row)`, {
            fix: error instanceof WrongBytesError
              ? `the file on the server does not match its index ${this.url}.chunks: rebuild the index beside it (or fix what serves it); the ${formatBytes(this.doneBytes())} verified so far are kept for the next try`
              : `check the server and run the same fetch again: the ${formatBytes(this.doneBytes())} verified so far are kept in ${this.paths.part}`,
            cause: error,
          });
          this.stop.abort(stopped);
          throw stopped;
        }
        this.totals.retries++;
        this.saveState(true);
        await sleep(backoff(this.options, failures - 1), this.stop.signal);
      }
    }
  }

  /**
   * What is still missing of `batch`, as one request (the rest of it, if the holes made
   * more ranges than a request takes, goes back in the queue); undefined when all is here.
   */
  private remaining(batch: Batch, queue: Batch[]): Batch | undefined {
    const left = batch.chunks.filter((k) => this.wants(k));
    if (left.length === 0) return undefined;
    const [next, ...rest] = this.plan(left);
    queue.push(...rest);
    return next;
  }

  /** Wrong bytes: is it because the file (and its index) changed on the server? */
  private async checkIndexUnchanged(): Promise<void> {
    let bytes: Buffer;
    try {
      const read = await readMainIndex(this.http, `${this.url}.chunks`, this.stop.signal, this.totals, this.remote.bytes.length);
      bytes = read.body.subarray(0, read.main);
    } catch {
      return;
    }
    if (!bytes.equals(this.remote.bytes)) throw new ChangedError("its index changed");
  }

  private async request(batch: Batch): Promise<void> {
    const headers: Record<string, string> = {};
    if (!this.wholeFile) {
      headers.Range = formatRange(batch.ranges);
      if (this.remote.etag) headers["If-Range"] = this.remote.etag;
    }
    this.totals.requests++;
    const res = await this.http.request(this.url, { headers, signal: this.stop.signal });
    const etag = res.headers.etag;
    if (this.remote.etag && etag !== undefined && etag !== this.remote.etag) {
      discard(res);
      res.destroy();
      throw new ChangedError(`its ETag went from ${this.remote.etag} to ${etag}`);
    }
    const status = res.statusCode ?? 0;
    if (status === 412 || status === 416) {
      discard(res);
      throw new ChangedError(`HTTP ${status} to a range of the index's ${this.index.size} bytes`);
    }
    if (status >= 500 || status === 408 || status === 429) {
      discard(res);
      throw new TransientError(`HTTP ${status}`);
    }
    if (status === 200) return this.receiveWhole(res);
    if (status !== 206) {
      discard(res);
      throw new FetchError(`${this.url}: HTTP ${status} to a range request`, { fix: "check the URL; the server must serve the file with GET" });
    }
    const receiver = new Receiver(this);
    const boundary = multipartBoundary(res.headers["content-type"]);
    if (boundary) {
      const reader = new MultipartReader(boundary, receiver);
      await consume(res, (data) => {
        this.totals.downloaded += data.length;
        reader.push(data);
      }, this.stop.signal);
      try {
        reader.end();
      } catch (error) {
        throw new TransientError((error as Error).message);
      }
      return;
    }
    const range = parseContentRange(res.headers["content-range"]);
    if (!range) {
      discard(res);
      throw new TransientError("a 206 answer without a Content-Range");
    }
    if (range.total !== undefined && range.total !== this.index.size) {
      discard(res);
      throw new ChangedError(`its size went from ${this.index.size} to ${range.total} bytes`);
    }
    receiver.part(range);
    let received = 0;
    await consume(res, (data) => {
      this.totals.downloaded += data.length;
      received += data.length;
      receiver.data(data);
    }, this.stop.signal);
    if (received !== range.end - range.start + 1) throw new TransientError(`a short answer (${received} of ${range.end - range.start + 1} bytes)`);
  }

  /** A 200: the server ignored Range and sent the whole file. Used (chunk by chunk, each verified) if it is the file of the index. */
  private async receiveWhole(res: IncomingMessage): Promise<void> {
    this.wholeFile = true;
    const length = Number(res.headers["content-length"]);
    if (res.headers["content-length"] !== undefined && length !== this.index.size) {
      discard(res);
      res.destroy();
      throw new ChangedError(`its size went from ${this.index.size} to ${length} bytes`);
    }
    const whole = createHash("sha256");
    const receiver = new Receiver(this);
    receiver.part({ start: 0, end: this.index.size - 1 });
    let received = 0;
    await consume(res, (data) => {
      this.totals.downloaded += data.length;
      received += data.length;
      whole.update(data);
      receiver.data(data);
    }, this.stop.signal);
    if (received !== this.index.size) throw new TransientError(`a short answer (${received} of ${this.index.size} bytes)`);
    if (whole.digest("hex") !== this.index.digest) throw new ChangedError("the whole file it sent is not the one its index describes");
  }

  /** Called by a Receiver with a whole chunk's bytes. */
  received(k: number, bytes: Buffer): void {
    const chunk = this.index.chunks[k];
    if (!this.positions.has(chunk.digest)) return; // here already (a duplicate, or from another answer)
    const partial = this.need.get(k);
    if (sha256Hex(bytes) !== chunk.digest) {
      if (partial) {
        this.need.delete(k); // the hints misled (or the seed changed): the whole chunk, next try
        return;
      }
      throw new WrongBytesError(chunk.offset);
    }
    if (partial) {
      this.totals.reused += partial.seeded;
      this.totals.fetched -= partial.seeded;
    }
    this.totals.fetched += this.place(chunk.digest, bytes);
    this.saveState();
    this.progress();
  }

  wants(k: number): boolean {
    return this.positions.has(this.index.chunks[k].digest);
  }

  /** What of chunk k is to be received: [from, to) of it, into `buffer` (its seeded parts already there). */
  needOf(k: number): Partial_ {
    return this.need.get(k) ?? { from: 0, to: this.index.chunks[k].size, seeded: 0 };
  }

  chunkAt(offset: number, hint: number): number {
    const chunks = this.index.chunks;
    if (hint >= 0 && hint < chunks.length && chunks[hint].offset <= offset && offset < chunks[hint].offset + chunks[hint].size) return hint;
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (chunks[mid].offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  get chunks() {
    return this.index.chunks;
  }

  // --- the end ------------------------------------------------------------------------

  /**
   * The whole file's sha256, made in file order as chunks land: a chunk written just
   * where the hash has got to is hashed from memory (a seed read in order is hashed so,
   * never read again); done chunks after it are read back from OUT.part. With a hashing
   * thread, only how far the file is final is counted here, and told to it (catchUp).
   */
  private hashInOrder(k: number, bytes: Buffer | Buffer[]): void {
    if (k !== this.hashed) return;
    if (!this.hasher) {
      if (Array.isArray(bytes)) for (const part of bytes) this.fileHash.update(part);
      else this.fileHash.update(bytes);
    }
    this.hashed++;
    this.catchUp();
  }

  /**
   * Hash the done chunks from where the file hash has got to, reading them from OUT.part;
   * or tell the hashing thread how far the file is final.
   */
  private catchUp(): void {
    const { chunks } = this.index;
    while (this.hashed < chunks.length && this.done[this.hashed]) {
      if (!this.hasher) {
        const chunk = chunks[this.hashed];
        const bytes = readAt(this.fd, (this.readBack ??= Buffer.allocUnsafe(this.index.params.max)), chunk.offset, chunk.size);
        if (!bytes) break;
        this.fileHash.update(bytes);
      }
      this.hashed++;
    }
    this.hasher?.advance(this.hashed < chunks.length ? chunks[this.hashed].offset : this.index.size);
  }

  /** Check the assembled file's hash; rename it into place when it is the file of the index. */
  private async finish(): Promise<string> {
    const { paths, index } = this;
    const digest = await this.wholeDigest(); // every chunk is done now: what was not hashed in order is read back
    if (this.stop.signal.aborted) throw this.stop.signal.reason; // Ctrl-C while the hash was awaited
    if (digest === undefined) throw new FetchError(`${this.url}: ${this.paths.part} could not be read back to hash it`, { fix: "run the same fetch again" });
    if (digest !== index.digest) {
      fs.closeSync(this.fd);
      this.fd = -1;
      removePartial(paths);
      throw new FetchError(`${this.url}: every chunk matched its index, but the whole file's sha256 is ${digest}, not the ${index.digest} the index says`, {
        fix: `the index ${this.url}.chunks is damaged or was not made by crecipe: rebuild it beside the file`,
      });
    }
    fs.closeSync(this.fd);
    this.fd = -1;
    const indexOut = `${this.options.out}.chunks`;
    fs.rmSync(indexOut, { force: true }); // an index of the file OUT replaces never describes the new one
    fs.renameSync(paths.part, this.options.out);
    removePartial(paths);
    if (this.options.keepIndex ?? true) {
      // Beside the file, the next fetch with it as a seed reads its chunks by this index instead of chunking it.
      try {
        writeFileAtomic(indexOut, this.remote.bytes);
      } catch { /* an optimisation only: the file is in place and verified */ }
    }
    return digest;
  }

  private doneBytes(): number {
    let n = 0;
    for (const [k, chunk] of this.index.chunks.entries()) if (this.done[k]) n += chunk.size;
    return n;
  }

  private progress(): void {
    if (!this.options.onProgress) return;
    const t = this.totals;
    this.options.onProgress({ size: this.index.size, done: t.resumed + t.reused + t.fetched, reused: t.reused, resumed: t.resumed, fetched: t.fetched, downloaded: t.downloaded });
  }

  private breathed = performance.now();
  /** Let the event loop run (signals, sockets) during long loops over the disk. */
  private breathe(): Promise<void> | undefined {
    if (this.stop.signal.aborted) throw this.stop.signal.reason;
    const now = performance.now();
    // While a download runs beside the seed, its answer is read at once, not 50 ms late.
    if (now - this.breathed < (this.gapsRunning ? 1 : 50)) return undefined;
    this.breathed = now;
    return new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Maps the bytes of the parts of one answer onto the index's chunks: a chunk is taken
 * when all of its wanted bytes came in one piece.
 */
class Receiver {
  private pos = 0;
  private current = -1;
  private buffer: Buffer | undefined;
  private filled = 0;

  constructor(private readonly job: Job) {}

  part(range: ByteRange): void {
    this.pos = range.start;
    this.buffer = undefined;
    this.current = -1;
  }

  data(bytes: Buffer): void {
    const chunks = this.job.chunks;
    const end = chunks.length ? chunks.at(-1)!.offset + chunks.at(-1)!.size : 0;
    for (let at = 0; at < bytes.length;) {
      if (this.pos >= end) throw new TransientError("bytes past the end of the file");
      const k = this.job.chunkAt(this.pos, this.current);
      const chunk = chunks[k];
      const { from, to, buffer } = this.job.needOf(k);
      const inChunk = this.pos - chunk.offset;
      let n = Math.min(bytes.length - at, chunk.size - inChunk);
      if (inChunk < from) n = Math.min(n, from - inChunk); // stop where its wanted bytes begin
      if (inChunk === from && n > 0) {
        this.buffer = this.job.wants(k) ? (buffer ?? Buffer.allocUnsafe(chunk.size)) : undefined;
        this.filled = 0;
      }
      if (k !== this.current && inChunk !== from) this.buffer = undefined; // came in past its start
      this.current = k;
      if (this.buffer) {
        const take = Math.max(0, Math.min(n, to - inChunk));
        bytes.copy(this.buffer, inChunk, at, at + take);
        this.filled += take;
        if (this.filled === to - from) {
          const whole = this.buffer;
          this.buffer = undefined;
          this.job.received(k, whole);
        }
      }
      at += n;
      this.pos += n;
    }
  }
}

/** Copy `length` bytes at `offset` of a file into `into` at `at`. */
function copyFrom(file: string, offset: number, into: Buffer, at: number, length: number): void {
  const fd = fs.openSync(file, "r");
  try {
    if (!readAt(fd, into.subarray(at), offset, length)) throw new Error(`${file} is shorter than it was`);
  } finally {
    fs.closeSync(fd);
  }
}

/** A seed's stat; a FetchError when it is not a file. */
function seedStat(seed: string): fs.Stats {
  const stat = fs.statSync(seed, { throwIfNoEntry: false });
  if (!stat?.isFile()) {
    throw new FetchError(`seed ${seed} is not a file`, { fix: "give files that may share chunks with the download (an older version of it)" });
  }
  return stat;
}

/** `size` bytes at `offset` of fd (in `buffer`), or undefined when the file is shorter. */
function readAt(fd: number, buffer: Buffer, offset: number, size: number): Buffer | undefined {
  let got = 0;
  while (got < size) {
    const n = fs.readSync(fd, buffer, got, size - got, offset + got);
    if (n === 0) return undefined;
    got += n;
  }
  return buffer.subarray(0, size);
}

function writeAt(fd: number, bytes: Uint8Array, offset: number): void {
  for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, bytes.length - done, offset + done);
}
