/**
 * Packing a large tar on other threads, straight into the output's shared ring.
 *
 * A layer of a tree spends most of its time opening, stat'ing, reading and closing each
 * file: system calls Node makes one at a time on the thread that asks. Here packer
 * threads do them, reading every file directly into the slots of the output's ring
 * (engine/io.ts), between the headers this thread made; the output's own thread writes
 * and hashes each slot as it fills. So each byte is copied once, from the page cache
 * into shared memory, and reading runs beside writing and hashing, while this thread
 * makes the next batch's headers. Each batch is given the ring slots its bytes will fill
 * before it is read (its headers' lengths and its files' sizes, from the tree's manifest),
 * so where files are small two packers read side by side and the archive stays in order.
 */
import { CrecipeError } from "../engine/errors.ts";
import { escapePath } from "../formats/entry.ts";
import { paddedLength } from "../formats/tar.ts";
import { type LentRing, RING, ringControl } from "../engine/io.ts";
import { cpuCount, startThread, threadsWanted } from "../engine/threads.ts";
import { statFields } from "../engine/manifest.ts";

/** One file of a batch: where it is, how long it must be, what stat must still say of it. */
export interface FileToRead {
  host: Buffer | string;
  size: number;
  /** statKey (engine/manifest.ts) the file must still have, when known. */
  sig?: string;
  /** For messages: the path inside the archive. */
  path: Buffer;
}

/**
 * Archive members for the packer: their headers (each with any long-name records before
 * it) laid end to end, how long each is, and each member's file, if it has bytes.
 */
export interface PackBatch {
  heads: Buffer;
  lengths: number[];
  files: (FileToRead | undefined)[];
}

// A batch is one message: every header in one buffer, the files' paths NUL-ended in
// another, sizes and signatures in arrays (a copy, not a clone of an object per item),
// and the number of the ring slot it starts at: a batch fills whole slots of its own, so
// that several packers can fill the ring at once, each batch in its place. A packer
// answers each batch with { done }, or once with { failed, why, at }.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const { sab, slots, slot, areas, area, R } = workerData;
const ctl = new Int32Array(sab, slots * slot, R.WORDS);
let seq = 0;
let buffer = null;
let used = 0;
let failed = false;
const ZEROS = Buffer.alloc(512);
function current() {
  if (buffer) return buffer;
  const p = seq % slots;
  for (;;) {
    const free = Atomics.load(ctl, R.FREE + p);
    if (free === seq) break;
    if (Atomics.load(ctl, R.DONE) === 2) throw Object.assign(new Error("output"), { output: true });
    if (Atomics.load(ctl, R.STOP) === 1) throw Object.assign(new Error("stopped"), { why: "stopped:" });
    Atomics.wait(ctl, R.FREE + p, free, 100);
  }
  buffer = Buffer.from(sab, p * slot, slot);
  used = 0;
  return buffer;
}
function ship() {
  if (!buffer || used === 0) return;
  const p = seq % slots;
  ctl[R.LENGTH + p] = used;
  Atomics.store(ctl, R.FULL + p, seq);
  Atomics.add(ctl, R.BELL, 1);
  Atomics.notify(ctl, R.BELL);
  seq++;
  buffer = null;
}
// Copy src[from, to) into the ring (Buffer.copy: no view object made per piece).
function put(src, from, to) {
  for (let at = from; at < to;) {
    current();
    const n = Math.min(slot - used, to - at);
    src.copy(buffer, used, at, at + n);
    used += n;
    at += n;
    if (used === slot) ship();
  }
}
const openToPack = ${openToPack.toString()};
const writtenSince = ${writtenSince.toString()};
function file(path, size, sigs, f) {
  const opened = openToPack(fs, path, size, sigs, 4 * f);
  if (typeof opened === "string") return opened;
  const fd = opened.fd;
  try {
    let done = 0;
    while (done < size) {
      current();
      const n = fs.readSync(fd, buffer, used, Math.min(slot - used, size - done), null);
      if (n === 0) return "shrank:" + done;
      used += n;
      done += n;
      if (used === slot) ship();
    }
    if (writtenSince(fs, fd, opened.st)) return "written:";
  } finally {
    fs.closeSync(fd);
  }
  put(ZEROS, 0, (512 - (size % 512)) % 512);
}
parentPort.on("message", (batch) => {
  if (failed) return;
  const data = batch.area >= 0 ? Buffer.from(areas, batch.area * area, area) : Buffer.from(batch.own.buffer, batch.own.byteOffset, batch.own.byteLength);
  const heads = data.subarray(0, batch.headBytes);
  const paths = data.subarray(batch.headBytes, batch.headBytes + batch.pathBytes);
  const sigs = batch.sigs;
  seq = batch.seq;
  let h = 0, p = 0, f = 0, i = 0;
  try {
    for (; i < batch.headLengths.length; i++) {
      put(heads, h, h += batch.headLengths[i]);
      const size = batch.sizes[i];
      if (size < 0) continue;
      const end = paths.indexOf(0, p);
      const why = file(paths.subarray(p, end), size, sigs, f++);
      p = end + 1;
      if (why) throw Object.assign(new Error(why), { why });
    }
    ship();
    // The batch filled exactly the slots it was given, or its sizes were not the files'.
    if (seq !== batch.seq + batch.slotCount) throw Object.assign(new Error("slots"), { why: "error:the batch filled " + (seq - batch.seq) + " slots, not " + batch.slotCount });
    parentPort.postMessage({ done: batch.n });
  } catch (error) {
    failed = true;
    const why = error.why || (error.output ? "output:" : "error:" + (error.code || error.message));
    parentPort.postMessage({ failed: batch.n, at: i, why });
  }
});
`;

/** What went wrong in a batch: the item, and why ("changed:N", "shrank:N", "error:CODE", "output:"). */
interface Failure {
  batch: number;
  at: number;
  why: string;
}

/**
 * Packer threads filling a lent ring. Each batch goes to the thread with fewer in hand,
 * two at most each; each batch is given the slots its bytes fill (known before it is
 * read: the headers, and each file's size from its tree's manifest), so the threads read
 * files side by side and the archive stays in order.
 */
export class Packer {
  private sent = 0;
  /** Batches sent to each thread, and answered by it (in order: a thread takes its own in turn). */
  private readonly given: number[];
  private readonly answered: number[];
  private stopping = false;
  /** The number of the next ring slot a batch starts at, and the bytes sent so far. */
  private seq: number;
  private bytes = 0;
  private failure?: Failure;
  private wake?: () => void;
  private readonly batches = new Map<number, (FileToRead | undefined)[]>();

  private constructor(
    private readonly workers: import("node:worker_threads").Worker[],
    private readonly areas: SharedArrayBuffer,
    private readonly slot: number,
    private readonly slots: number,
    private readonly ctl: Int32Array,
    next: number,
    /** Throws the output's own error where its thread failed (a full disk). */
    private readonly outputFailure?: () => void,
  ) {
    this.seq = next;
    this.given = workers.map(() => 0);
    this.answered = workers.map(() => 0);
    workers.forEach((worker, k) => {
      worker.on("message", (m: { done?: number; failed?: number; at?: number; why?: string }) => {
        this.answered[k]++;
        if (m.done !== undefined) this.batches.delete(m.done);
        else if (m.failed !== undefined) this.fail({ batch: m.failed, at: m.at!, why: m.why! });
        this.wake?.();
      });
      worker.on("error", (error) => {
        this.fail({ batch: -1, at: 0, why: `error:${error.message}` });
        this.wake?.();
      });
      worker.on("exit", () => {
        if (!this.stopping) this.fail({ batch: -1, at: 0, why: "error:the packing thread stopped" });
        this.wake?.();
      });
    });
  }

  /** A thread with fewer than two batches in hand, if one has. */
  private ready(): number {
    let best = -1;
    for (let k = 0; k < this.workers.length; k++) {
      const held = this.given[k] - this.answered[k];
      if (held < 2 && (best < 0 || held < this.given[best] - this.answered[best])) best = k;
    }
    return best;
  }

  /** The first failure, not one of the others that stopped because of it; the rest stop. */
  private fail(failure: Failure): void {
    if (failure.why.startsWith("stopped:")) return;
    this.failure ??= failure;
    Atomics.store(this.ctl, RING.STOP, 1);
    for (let p = 0; p < this.slots; p++) Atomics.notify(this.ctl, RING.FREE + p);
  }

  /**
   * Packers for `ring` (`threads` of them, fewer where they cannot start), or undefined
   * where worker threads cannot start.
   */
  static start(ring: LentRing, threads = 1, outputFailure?: () => void): Packer | undefined {
    if (!threadsWanted()) return undefined;
    const areas = new SharedArrayBuffer(AREAS_EACH * threads * AREA);
    const workers: import("node:worker_threads").Worker[] = [];
    try {
      for (let k = 0; k < threads; k++) workers.push(startThread(WORKER_SOURCE, { ...ring, areas, area: AREA, R: RING }));
    } catch { /* as many as started */ }
    if (!workers.length) return undefined;
    return new Packer(workers, areas, ring.slot, ring.slots, ringControl(ring), ring.next, outputFailure);
  }

  /** Queue `batch` with the thread that has the fewest, waiting while each has two. */
  async send(batch: PackBatch, target: string, tree: string | undefined): Promise<void> {
    let k: number;
    while ((k = this.ready()) < 0 && !this.failure) await new Promise<void>((resolve) => (this.wake = resolve));
    this.raise(target, tree);
    const { heads, lengths, files } = batch;
    const headLengths = Int32Array.from(lengths);
    const sizes = new Float64Array(files.length);
    // Each file's recorded stat as numbers (statFields): the packer compares them with its
    // fstat without making a string per file.
    const sigs = new Float64Array(files.length * 4);
    let pathBytes = 0;
    let bytes = heads.length;
    let f = 0;
    files.forEach((file, i) => {
      sizes[i] = file ? file.size : -1;
      if (!file) return;
      bytes += paddedLength(file.size);
      pathBytes += Buffer.byteLength(file.host) + 1;
      if (!file.sig) sigs[4 * f] = -1;
      else sigs.set(statFields(file.sig), 4 * f);
      f++;
    });
    // Headers and paths go through shared memory, one area per batch in flight, so the
    // packer's heap never holds a batch's buffers (it would rarely collect them). A
    // batch too large for its area (very long names, many xattrs) gets buffers of its own.
    const headBytes = heads.length;
    const area = k * AREAS_EACH + (this.given[k] % AREAS_EACH);
    const shared = headBytes + pathBytes <= AREA;
    const data = shared ? Buffer.from(this.areas, area * AREA, AREA) : Buffer.allocUnsafe(headBytes + pathBytes);
    heads.copy(data, 0);
    let at = headBytes;
    for (const file of files) {
      if (!file) continue;
      if (typeof file.host === "string") at += data.write(file.host, at, "utf8");
      else at += file.host.copy(data, at);
      data[at++] = 0;
    }
    const slotCount = Math.ceil(bytes / this.slot);
    this.batches.set(this.sent, files);
    this.workers[k].postMessage(
      { n: this.sent, seq: this.seq, slotCount, area: shared ? area : -1, own: shared ? undefined : data, headBytes, pathBytes, headLengths, sizes, sigs },
      [headLengths.buffer, sizes.buffer, sigs.buffer],
    );
    this.sent++;
    this.given[k]++;
    this.seq += slotCount;
    this.bytes += bytes;
  }

  /**
   * Wait for every batch, or the first failure; the number of the next ring slot and the
   * bytes written, for the caller to take its ring back once `raise` has not thrown.
   */
  async end(): Promise<{ next: number; bytes: number }> {
    const pending = () => this.given.some((n, k) => this.answered[k] < n);
    while (pending() && !this.failure) await new Promise<void>((resolve) => (this.wake = resolve));
    return { next: this.seq, bytes: this.bytes };
  }

  /** Throw what went wrong in a batch, if anything did. */
  raise(target: string, tree: string | undefined): void {
    if (!this.failure) return;
    const { batch, at, why } = this.failure;
    if (why.startsWith("output:")) {
      this.outputFailure?.();
      throw new CrecipeError("writing the output failed", { target });
    }
    const file = this.batches.get(batch)?.[at];
    if (!file) throw new CrecipeError(`the packing thread failed: ${why.replace(/^error:/, "")}`, { target });
    throw problem(file, why, target, tree);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * How many threads read a tree's files for its layer. Each file costs a packer its open,
 * fstat, read and close, ~15 µs here whatever its size, and a layer's output thread
 * writes and hashes ~1 GB/s: where files are small (under 8 KiB on average) the packer is
 * the slowest of the threads, and two of them reading side by side take it off the
 * critical path (100 000 files of 1 KiB: 1.5 s instead of 1.75 s, measured). Where files
 * are larger a second one only adds its start-up (~75 ms of CPU) to busy cores. One
 * where the machine has one core, or CRECIPE_PACKERS=1 says so.
 */
export function packersFor(files: number, bytes: number): number {
  const wanted = Math.max(1, Math.floor(Number(process.env.CRECIPE_PACKERS) || 2));
  const many = files >= 1000 && bytes < files * 8192;
  return Math.min(wanted, cpuCount(), many ? 2 : 1);
}

/** Batches in flight for each packer (two with it, one being filled), each with an area of shared memory. */
const AREAS_EACH = 3;
const AREA = 256 << 10;

/** The error for a file that is not what its tree's manifest says, or cannot be read. */
export function problem(file: FileToRead, why: string, target: string, tree: string | undefined): CrecipeError {
  const shown = escapePath(file.path);
  const colon = why.indexOf(":");
  const kind = why.slice(0, colon);
  const detail = why.slice(colon + 1);
  if (kind === "error") return new CrecipeError(`cannot read ${shown}: ${detail}`, { target, fix: "make the file readable to the user who builds" });
  const what = kind === "shrank" ? `shrank while packing (${file.size} → ${detail} bytes)`
    : kind === "written" ? "was written to while it was packed"
    : kind === "gone" ? `was removed after ${tree ?? "its tree"} was built, or replaced by a symlink (${detail})`
    : `changed after ${tree ?? "its tree"} was built (${file.size} → ${detail} bytes)`;
  return new CrecipeError(`${shown} ${what}`, {
    target,
    fix: tree && kind !== "written" && kind !== "shrank"
      ? `something edited out/${tree} by hand: run crecipe again with --check, which finds and rebuilds it`
      : `something is writing into ${tree ? `out/${tree}` : "it"}; run again when it is done${tree ? " (with --check, which rebuilds what it changed)" : ""}`,
  });
}

/**
 * Open a file to pack and check that it is still what its tree recorded: its descriptor
 * and stat, or why not ("changed:SIZE"; "gone:CODE" for a file removed, or made a
 * symlink). `sigs[s..s+3]` are the inode, mtime (ms), size and mode the tree recorded,
 * in statFields' order (engine/manifest.ts); -1 first: none. A FIFO put in a file's
 * place must not block the open (O_NONBLOCK), nor a symlink lead out of the tree
 * (O_NOFOLLOW). The packer thread runs it as text, so it uses nothing but its arguments.
 */
export function openToPack(fs: typeof import("node:fs"), path: Buffer | string, size: number, sigs: ArrayLike<number>, s: number): { fd: number; st: import("node:fs").Stats } | string {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP") return "gone:" + code;
    throw error;
  }
  let st;
  try {
    st = fs.fstatSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
  const same = sigs[s] === -1 || (st.ino === sigs[s] && st.mtimeMs === sigs[s + 1] && st.size === sigs[s + 2] && st.mode === sigs[s + 3]);
  if (same && st.size === size && st.isFile()) return { fd, st };
  fs.closeSync(fd);
  return "changed:" + st.size;
}

/**
 * Whether a file of 64 KiB or more was written while it was read (its stat again, as GNU
 * tar takes it): a smaller one is read in one call right after its stat. A write moves
 * the mtime or the size. The ctime is not compared: a link made or removed elsewhere
 * moves it too, and trees made with `cp -al` share their inodes with other trees (the
 * background removal of a tree's previous copy unlinks them while the new one is packed).
 */
export function writtenSince(fs: typeof import("node:fs"), fd: number, st: import("node:fs").Stats): boolean {
  if (st.size < 65536) return false;
  const now = fs.fstatSync(fd);
  return now.size !== st.size || now.mtimeMs !== st.mtimeMs;
}
