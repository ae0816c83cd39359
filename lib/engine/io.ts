/**
 * Streaming file I/O for large outputs: a buffered writer that hashes what it writes (a
 * tar is many small headers; its digest comes for free on the way), and a line reader
 * that holds one chunk, never the whole file.
 */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import { startThread, THREAD_BYTES, threadsWanted } from "./threads.ts";

const require = createRequire(import.meta.url);

const CHUNK = 1 << 20;

/**
 * An output file written through a buffer and hashed on the way (sha256). An output that
 * is expected to be large (a layer, an image tar: `expectedSize`) is written and hashed
 * by a worker thread reading the chunks from shared memory, while this thread fills the
 * next: the digest and the writing cost the building thread nothing.
 */
export class OutputFile {
  private readonly fd: number;
  private buffer: Buffer;
  private used = 0;
  private readonly worker?: ParallelHash;
  private readonly hash?: Hash;
  size = 0;

  constructor(path: string | Buffer, expectedSize = 0) {
    this.fd = fs.openSync(path, "w");
    if (expectedSize > THREAD_BYTES && threadsWanted()) this.worker = ParallelHash.start(path);
    if (this.worker) this.buffer = this.worker.acquire();
    else {
      this.hash = createHash("sha256");
      this.buffer = Buffer.allocUnsafe(expectedSize && expectedSize < CHUNK ? Math.max(expectedSize, 4096) : CHUNK);
    }
  }

  write(data: Uint8Array): void {
    this.size += data.length;
    for (let at = 0; at < data.length;) {
      if (this.used === this.buffer.length) this.flush();
      const n = Math.min(data.length - at, this.buffer.length - this.used);
      this.buffer.set(data.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
    }
  }

  writeText(text: string): void {
    this.write(Buffer.from(text, "latin1"));
  }

  /**
   * Append `size` bytes of an open file; returns how many there were (fewer when the
   * file shrank meanwhile, which the caller must treat as an error).
   */
  copyFrom(fd: number, size: number): number {
    let total = 0;
    while (total < size) {
      if (this.used === this.buffer.length) this.flush();
      const want = Math.min(this.buffer.length - this.used, size - total);
      const n = fs.readSync(fd, this.buffer, this.used, want, null);
      if (n === 0) break;
      this.used += n;
      this.size += n;
      total += n;
    }
    return total;
  }

  private flush(): void {
    if (this.worker) {
      // The worker writes the chunk, then hashes it: this thread goes on filling the next.
      this.worker.submit(this.used);
      this.buffer = this.worker.acquire();
    } else {
      let written = 0;
      while (written < this.used) written += fs.writeSync(this.fd, this.buffer, written, this.used - written);
      this.hash!.update(this.buffer.subarray(0, this.used));
    }
    this.used = 0;
  }

  /**
   * Lend the ring to another thread (a packer, targets/pack.ts) that fills its slots in
   * turn: what is buffered goes first. Undefined for an output without a hashing thread.
   * Nothing may be written here until `takeBack`.
   */
  lend(): LentRing | undefined {
    if (!this.worker) return undefined;
    if (this.used > 0) this.worker.submit(this.used);
    this.used = 0;
    return { sab: this.worker.sab, slots: SLOTS, slot: RING_CHUNK, next: this.worker.next };
  }

  /** Throw the output's own failure (a full disk met by its thread), if it has one. */
  raiseFailure(): void {
    this.worker?.check();
  }

  /** Take the ring back from the borrowers, who filled it up to slot `next` with `bytes`. */
  takeBack(next: number, bytes: number): void {
    this.worker!.next = next;
    this.buffer = this.worker!.acquire();
    this.size += bytes;
  }

  /** Flush and close; returns the sha256 hex of everything written. */
  close(): string {
    this.flush();
    try {
      return this.worker ? this.worker.digest() : this.hash!.digest("hex");
    } finally {
      fs.closeSync(this.fd);
    }
  }

  /** Close without caring for the digest (on an error path). */
  abandon(): void {
    try {
      this.worker?.digest(true);
    } catch { /* the worker's own failure: the caller has one already */ }
    try {
      fs.closeSync(this.fd);
    } catch { /* closed */ }
  }
}

/**
 * The ring: SLOTS slots of RING_CHUNK bytes, filled in sequence. Slot number `s` (0, 1, 2, …)
 * goes to position s % SLOTS; any thread may fill it (this one, or one of several packers
 * each given whole slots: pack.ts), and the output's thread writes and hashes them in
 * number order. A smaller chunk than a plain buffer's: each batch of files a packer is
 * given starts a slot of its own, so the last one of each is partly filled. 4 MiB in all:
 * as fast as 8 MiB here (the packer and the writer rarely wait on each other), and 4 MB
 * less in the peak memory of a layer of 100 000 files, where the goal is 150 MB.
 */
const SLOTS = 16;
const RING_CHUNK = 256 << 10;

/**
 * Where the ring's control words are, in an Int32Array after its slots:
 * FULL + p holds the number of the slot last filled at position p; FREE + p the number
 * that may be filled there next (the output's thread moves it on by SLOTS once it has
 * written one); LENGTH + p how many bytes of it are filled. BELL counts fills (the output
 * thread waits on it, whoever filled); END is the number of slots in all once the writer
 * closes (-1 before); DONE 0 running, 1 finished, 2 failed; ABANDON: stop without a
 * digest; STARTED: the output's thread opened the file; STOP: producers give up (one failed).
 */
export const RING = { FULL: 0, FREE: SLOTS, LENGTH: 2 * SLOTS, BELL: 3 * SLOTS, END: 3 * SLOTS + 1, DONE: 3 * SLOTS + 2, ABANDON: 3 * SLOTS + 3, STARTED: 3 * SLOTS + 4, STOP: 3 * SLOTS + 5, WORDS: 3 * SLOTS + 6 } as const;

/** An output's ring as other threads fill it: see RING. */
export interface LentRing {
  sab: SharedArrayBuffer;
  slots: number;
  slot: number;
  /** The number of the next slot to fill. */
  next: number;
}

/** A ring's control words (RING), after its slots; its digest's 64 bytes follow them. */
export function ringControl(ring: { sab: SharedArrayBuffer; slots: number; slot: number }): Int32Array {
  return new Int32Array(ring.sab, ring.slots * ring.slot, RING.WORDS);
}

const WORKER_SOURCE = `
const { createHash } = require("node:crypto");
const { openSync, writeSync, closeSync } = require("node:fs");
const { sab, slots, slot, R } = workerData;
const ctl = new Int32Array(sab, slots * slot, R.WORDS);
const digest = new Uint8Array(sab, slots * slot + R.WORDS * 4, 64);
// The thread opens the output itself: a descriptor is not shared between threads
// everywhere (in Deno each has its own resources).
let fd = -1;
(function run() { try {
  fd = openSync(typeof workerData.path === "string" ? workerData.path : Buffer.from(workerData.path), "r+");
  Atomics.store(ctl, R.STARTED, 1);
  const hash = createHash("sha256");
  for (let s = 0; ; s++) {
    const p = s % slots;
    for (;;) {
      const bell = Atomics.load(ctl, R.BELL);
      if (Atomics.load(ctl, R.FULL + p) === s) break;
      const abandoned = Atomics.load(ctl, R.ABANDON) === 1;
      if (abandoned || Atomics.load(ctl, R.END) === s) {
        if (!abandoned) digest.set(Buffer.from(hash.digest("hex"), "latin1"));
        const done = fd;
        fd = -1; // closed once, whatever closing says
        closeSync(done);
        Atomics.store(ctl, R.DONE, 1);
        Atomics.notify(ctl, R.DONE);
        return;
      }
      Atomics.wait(ctl, R.BELL, bell, 100);
    }
    const chunk = new Uint8Array(sab, p * slot, ctl[R.LENGTH + p]);
    for (let at = 0; at < chunk.length;) at += writeSync(fd, chunk, at, chunk.length - at);
    hash.update(chunk);
    Atomics.store(ctl, R.FREE + p, s + slots);
    Atomics.notify(ctl, R.FREE + p);
  }
} catch (error) {
  if (fd >= 0) try { closeSync(fd); } catch {}
  digest.set(Buffer.from(String(error.code || error.message)).subarray(0, 64));
  Atomics.store(ctl, R.DONE, 2);
  Atomics.notify(ctl, R.DONE);
  Atomics.store(ctl, R.STOP, 1);
  for (let p = 0; p < slots; p++) Atomics.notify(ctl, R.FREE + p);
} })();
`;

/**
 * A sha256 computed (and the file written) by a worker thread over the ring's slots in
 * shared memory, in their numbered order, whichever thread filled them.
 */
class ParallelHash {
  /** The number of the next slot this thread fills. */
  next = 0;
  private constructor(
    readonly sab: SharedArrayBuffer,
    private readonly ctl: Int32Array,
    private readonly digestBytes: Uint8Array,
    private readonly worker: { unref(): void; terminate(): unknown },
    /** The output's path, for messages. */
    private readonly path: string,
  ) {}

  static start(path: string | Buffer): ParallelHash | undefined {
    try {
      const sab = new SharedArrayBuffer(SLOTS * RING_CHUNK + RING.WORDS * 4 + 64);
      const ctl = ringControl({ sab, slots: SLOTS, slot: RING_CHUNK });
      for (let p = 0; p < SLOTS; p++) {
        ctl[RING.FULL + p] = -1;
        ctl[RING.FREE + p] = p;
      }
      ctl[RING.END] = -1;
      const worker = startThread(WORKER_SOURCE, { sab, slots: SLOTS, slot: RING_CHUNK, path, R: RING });
      worker.unref();
      const digestBytes = new Uint8Array(sab, ctl.byteOffset + ctl.byteLength, 64);
      return new ParallelHash(sab, ctl, digestBytes, worker, path.toString());
    } catch {
      return undefined;
    }
  }

  /** The next slot to fill, waiting for the worker to be done with what was there. */
  acquire(): Buffer {
    const p = this.next % SLOTS;
    for (;;) {
      const free = Atomics.load(this.ctl, RING.FREE + p);
      if (free === this.next) break;
      this.check();
      Atomics.wait(this.ctl, RING.FREE + p, free, 100);
    }
    return Buffer.from(this.sab, p * RING_CHUNK, RING_CHUNK);
  }

  /** Hand the slot just filled (`length` bytes) to the worker, to write and hash. */
  submit(length: number): void {
    const p = this.next % SLOTS;
    this.ctl[RING.LENGTH + p] = length;
    Atomics.store(this.ctl, RING.FULL + p, this.next);
    Atomics.add(this.ctl, RING.BELL, 1);
    Atomics.notify(this.ctl, RING.BELL);
    this.next++;
  }

  /** Wait for the worker to write and hash every slot submitted; the sha256 hex. */
  digest(abandon = false): string {
    if (abandon) {
      Atomics.store(this.ctl, RING.STOP, 1);
      Atomics.store(this.ctl, RING.ABANDON, 1);
    }
    Atomics.store(this.ctl, RING.END, this.next);
    Atomics.add(this.ctl, RING.BELL, 1);
    Atomics.notify(this.ctl, RING.BELL);
    while (Atomics.load(this.ctl, RING.DONE) === 0) {
      this.check();
      Atomics.wait(this.ctl, RING.DONE, 0, 100);
    }
    this.check();
    return Buffer.from(this.digestBytes).toString("latin1");
  }

  private readonly started = Date.now();

  check(): void {
    if (Atomics.load(this.ctl, RING.DONE) === 2) {
      const why = Buffer.from(this.digestBytes).toString("latin1").replace(/\0+$/, "");
      const error = new Error(`writing the output failed: ${why}`) as NodeJS.ErrnoException;
      // A system error as the thread met it (a full disk): the message and fix a write's would get.
      if (/^E[A-Z]+$/.test(why)) Object.assign(error, { code: why, syscall: "write", path: this.path });
      throw error;
    }
    if (Atomics.load(this.ctl, RING.STARTED) === 0 && Date.now() - this.started > 20_000) throw new Error("the hashing thread did not start");
  }
}

let lastBreath = performance.now();
/**
 * Let the event loop run (a signal's handler, timers) when this thread has worked
 * without a break for 50 ms: long loops over files call this, so Ctrl-C stops a build
 * in the middle of a layer instead of after its commit.
 */
export function breathe(): Promise<void> | undefined {
  const now = performance.now();
  if (now - lastBreath < 50) return undefined;
  lastBreath = now;
  return new Promise((resolve) => setImmediate(resolve));
}

const LINES_CHUNK = 64 << 10;

/**
 * The lines of a text file, without their newlines, read a chunk at a time (latin1: bytes
 * stay bytes). Chunks are small enough for their strings to die young: a 1 MiB string
 * would be a large object, kept until a full collection (14 MB of them at the peak of a
 * 100 000-file layer).
 */
export function* readLines(path: string): Generator<string> {
  const fd = fs.openSync(path, "r");
  const buffer = Buffer.allocUnsafe(LINES_CHUNK);
  let rest = "";
  try {
    for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0;) {
      const text = rest + buffer.toString("latin1", 0, n);
      let start = 0;
      for (let end; (end = text.indexOf("\n", start)) >= 0; start = end + 1) yield text.slice(start, end);
      rest = text.slice(start);
    }
    if (rest) yield rest;
  } finally {
    fs.closeSync(fd);
  }
}

/** A hard link to `from` at `to`, or a copy where links cannot be made (another file system). */
export function linkOrCopy(from: string, to: string): void {
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to);
  }
}

/**
 * A content-addressed file (named by its digest) linked into place from `from` unless
 * one is there already: the same name holds the same bytes.
 */
export function linkBlob(from: string, to: string): void {
  if (!fs.existsSync(to)) linkOrCopy(from, to);
}

/** rm -rf that also copes with read-only directories inside (a built tree may have them). */
export function removeTree(dir: string | Buffer): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    const chmodAll = (p: Buffer) => {
      try {
        const st = fs.lstatSync(p);
        if (st.isDirectory()) {
          fs.chmodSync(p, 0o700);
          for (const name of fs.readdirSync(p, { encoding: "buffer" })) chmodAll(Buffer.concat([p, Buffer.from("/"), name]));
        }
      } catch { /* ignore */ }
    };
    chmodAll(Buffer.from(dir));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Bytes and entries that make a tree worth removing in the background (removeTreeSoon). */
const HEAVY_BYTES = 32 << 20;
const HEAVY_ENTRIES = 2000;

/** Whether `dir` holds at least HEAVY_BYTES or HEAVY_ENTRIES (it stops looking there). */
function heavy(dir: string): boolean {
  let bytes = 0;
  let entries = 0;
  const stack = [dir];
  while (stack.length) {
    const at = stack.pop()!;
    let names: string[];
    try {
      names = fs.readdirSync(at);
    } catch {
      continue;
    }
    for (const name of names) {
      const st = fs.lstatSync(`${at}/${name}`, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) stack.push(`${at}/${name}`);
      else if (st.nlink === 1) bytes += st.size; // a hard link's data stays: unlinking it is cheap
      if (bytes >= HEAVY_BYTES || ++entries >= HEAVY_ENTRIES) return true;
    }
  }
  return false;
}

/**
 * removeTree, without waiting where that would cost: a tree that holds a large file or many
 * entries (an output just replaced: unlinking a 200 MB layer takes the kernel ~80 ms) is
 * moved into `trash` (on the same file system) and removed there by a detached `rm`, so the
 * build does not wait for it. A trash entry left behind (the machine stopped) is named
 * after this process like a temp dir, and swept the same way once this process is gone.
 */
export function removeTreeSoon(dir: string, trash: string): void {
  if (!heavy(dir)) return removeTree(dir);
  const moved = `${trash}/${dir.slice(dir.lastIndexOf("/") + 1)}`;
  try {
    fs.mkdirSync(trash, { recursive: true });
    fs.renameSync(dir, moved);
  } catch {
    return removeTree(dir);
  }
  try {
    const { spawn } = require("node:child_process") as typeof import("node:child_process");
    // A read-only directory inside (a built tree may have them) stops rm: made writable, then again.
    const script = 'rm -rf -- "$1" 2>/dev/null || { chmod -R u+rwX -- "$1"; rm -rf -- "$1"; }';
    const child = spawn("sh", ["-c", script, "sh", moved], { detached: true, stdio: "ignore" });
    child.on("error", () => removeTree(moved));
    child.unref();
  } catch {
    removeTree(moved);
  }
}

/**
 * A symlink's target as bytes (names need not be UTF-8). Always a Buffer: under Deno,
 * readlinkSync(…, { encoding: "buffer" }) gives a plain Uint8Array, whose toString()
 * and equals() are not Buffer's.
 */
export function readlinkBytes(p: string | Buffer): Buffer {
  const link: Uint8Array = fs.readlinkSync(p, { encoding: "buffer" });
  return Buffer.isBuffer(link) ? link : Buffer.from(link.buffer, link.byteOffset, link.byteLength);
}

/**
 * `name` cut to fit in `maxBytes` of a file name, kept unique by a hash of the whole:
 * "a-very-long-target…~3f2a9c1b". Names that fit are returned as they are.
 */
export function fitName(name: string, maxBytes: number): string {
  if (Buffer.byteLength(name) <= maxBytes) return name;
  const tag = "~" + createHash("sha256").update(name).digest("hex").slice(0, 8);
  let cut = Buffer.from(name).subarray(0, maxBytes - tag.length).toString("utf8");
  while (Buffer.byteLength(cut) > maxBytes - tag.length || cut.endsWith("\uFFFD")) cut = cut.slice(0, -1);
  return cut + tag;
}
