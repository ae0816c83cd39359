/**
 * Packing a large tar on another thread, straight into the output's shared ring.
 *
 * A layer of a tree spends most of its time opening, stat'ing, reading and closing each
 * file: system calls Node makes one at a time on the thread that asks. Here one packer
 * thread does them, reading every file directly into the slots of the output's ring
 * (engine/io.ts), between the headers this thread made; the output's own thread writes
 * and hashes each slot as it fills. So each byte is copied once, from the page cache
 * into shared memory, and on two cores reading runs beside writing and hashing, while
 * this thread makes the next batch's headers.
 */
import { CrecipeError } from "../engine/errors.ts";
import { escapePath } from "../formats/entry.ts";
import type { LentRing } from "../engine/io.ts";
import { startThread, threadsWanted } from "../engine/threads.ts";
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
// another, sizes and signatures in arrays (a copy, not a clone of an object per item).
// The packer answers each batch with { done }, or once with { failed, why, at }; at
// the end, { next, bytes }: the slot where it stopped and what it wrote.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const { sab, slots, slot, areas, area } = workerData;
const state = new Int32Array(sab, slots * slot, slots + 4);
const lengths = new Int32Array(sab, slots * slot + (slots + 4) * 4, slots);
let next = workerData.next;
let buffer = null;
let used = 0;
let bytes = 0;
let failed = false;
const ZEROS = Buffer.alloc(512);
function current() {
  if (buffer) return buffer;
  while (Atomics.load(state, next) !== 0) {
    if (Atomics.load(state, slots + 1) === 2) throw Object.assign(new Error("output"), { output: true });
    Atomics.wait(state, next, 1, 100);
  }
  buffer = Buffer.from(sab, next * slot, slot);
  used = 0;
  return buffer;
}
function ship() {
  if (!buffer || used === 0) return;
  lengths[next] = used;
  Atomics.store(state, next, 1);
  Atomics.notify(state, next);
  next = (next + 1) % slots;
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
    bytes += n;
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
      bytes += n;
      if (used === slot) ship();
    }
    if (writtenSince(fs, fd, opened.st)) return "written:";
  } finally {
    fs.closeSync(fd);
  }
  put(ZEROS, 0, (512 - (size % 512)) % 512);
}
parentPort.on("message", (batch) => {
  if (batch === "end") {
    if (!failed) ship();
    parentPort.postMessage({ next, bytes });
    // Done: the thread may end (Deno's port has no close(); stop() ends the thread there).
    return parentPort.close?.();
  }
  if (failed) return;
  const data = batch.area >= 0 ? Buffer.from(areas, batch.area * area, area) : Buffer.from(batch.own.buffer, batch.own.byteOffset, batch.own.byteLength);
  const heads = data.subarray(0, batch.headBytes);
  const paths = data.subarray(batch.headBytes, batch.headBytes + batch.pathBytes);
  const sigs = batch.sigs;
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

/** A packer thread writing into a lent ring; batches go in order, two in flight at most. */
export class Packer {
  private sent = 0;
  private acked = 0;
  private failure?: Failure;
  private wake?: () => void;
  private finished?: (end: { next: number; bytes: number }) => void;
  private readonly batches = new Map<number, (FileToRead | undefined)[]>();

  private constructor(
    private readonly worker: import("node:worker_threads").Worker,
    private readonly areas: SharedArrayBuffer,
  ) {
    worker.on("message", (m: { done?: number; failed?: number; at?: number; why?: string; next?: number; bytes?: number }) => {
      if (m.done !== undefined) {
        this.acked = m.done + 1;
        this.batches.delete(m.done);
      } else if (m.failed !== undefined) this.failure = { batch: m.failed, at: m.at!, why: m.why! };
      else this.finished?.({ next: m.next!, bytes: m.bytes! });
      this.wake?.();
    });
    worker.on("error", (error) => {
      this.failure ??= { batch: -1, at: 0, why: `error:${error.message}` };
      this.wake?.();
    });
  }

  /** A packer for `ring`, or undefined where worker threads cannot start. */
  static start(ring: LentRing): Packer | undefined {
    if (!threadsWanted()) return undefined;
    try {
      const areas = new SharedArrayBuffer(AREAS * AREA);
      return new Packer(startThread(WORKER_SOURCE, { ...ring, areas, area: AREA }), areas);
    } catch {
      return undefined;
    }
  }

  /** Queue `batch`, waiting while two batches are ahead of the packer. */
  async send(batch: PackBatch, target: string, tree: string | undefined): Promise<void> {
    while (this.sent - this.acked >= 2 && !this.failure) await new Promise<void>((resolve) => (this.wake = resolve));
    this.raise(target, tree);
    const { heads, lengths, files } = batch;
    const headLengths = Int32Array.from(lengths);
    const sizes = new Float64Array(files.length);
    // Each file's recorded stat as numbers (statFields): the packer compares them with its
    // fstat without making a string per file.
    const sigs = new Float64Array(files.length * 4);
    let pathBytes = 0;
    let f = 0;
    files.forEach((file, i) => {
      sizes[i] = file ? file.size : -1;
      if (!file) return;
      pathBytes += Buffer.byteLength(file.host) + 1;
      if (!file.sig) sigs[4 * f] = -1;
      else sigs.set(statFields(file.sig), 4 * f);
      f++;
    });
    // Headers and paths go through shared memory, one area per batch in flight, so the
    // packer's heap never holds a batch's buffers (it would rarely collect them). A
    // batch too large for its area (very long names, many xattrs) gets buffers of its own.
    const headBytes = heads.length;
    const area = this.sent % AREAS;
    const shared = headBytes + pathBytes <= AREA;
    const bytes = shared ? Buffer.from(this.areas, area * AREA, AREA) : Buffer.allocUnsafe(headBytes + pathBytes);
    heads.copy(bytes, 0);
    let at = headBytes;
    for (const file of files) {
      if (!file) continue;
      if (typeof file.host === "string") at += bytes.write(file.host, at, "utf8");
      else at += file.host.copy(bytes, at);
      bytes[at++] = 0;
    }
    this.batches.set(this.sent, files);
    this.worker.postMessage(
      { n: this.sent++, area: shared ? area : -1, own: shared ? undefined : bytes, headBytes, pathBytes, headLengths, sizes, sigs },
      [headLengths.buffer, sizes.buffer, sigs.buffer],
    );
  }

  /**
   * Wait for every batch; where the packer stopped in the ring and what it wrote. The
   * caller takes its ring back with these before looking at `failed`.
   */
  async end(): Promise<{ next: number; bytes: number }> {
    const end = new Promise<{ next: number; bytes: number }>((resolve) => (this.finished = resolve));
    this.worker.postMessage("end");
    const result = await Promise.race([end, new Promise<never>((_, reject) => this.worker.once("exit", () => reject(new Error(`the packing thread stopped${this.failure ? `: ${this.failure.why}` : ""}`))))]);
    return result;
  }

  /** Throw what went wrong in a batch, if anything did. */
  raise(target: string, tree: string | undefined): void {
    if (!this.failure) return;
    const { batch, at, why } = this.failure;
    if (why.startsWith("output:")) throw new CrecipeError("writing the output failed", { target });
    const file = this.batches.get(batch)?.[at];
    if (!file) throw new CrecipeError(`the packing thread failed: ${why.replace(/^error:/, "")}`, { target });
    throw problem(file, why, target, tree);
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }
}

/** Batches in flight (two with the packer, one being filled), each with an area of shared memory. */
const AREAS = 3;
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
