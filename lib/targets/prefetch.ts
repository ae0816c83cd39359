/**
 * Reading many files on other threads while this one writes them out. An archive of a
 * tree of small files spends most of its time opening, stat'ing, reading and closing
 * each file, system calls Node makes one at a time on the thread that asks. Here reader
 * threads take every n-th file, check it against its manifest and read it into a ring of
 * shared-memory slots, in order; the archive writer takes the bytes from the rings.
 */
import { createRequire } from "node:module";
import { CrecipeError } from "../engine/errors.ts";
import { SMALL_HEAP } from "../engine/io.ts";

const require = createRequire(import.meta.url);
const NUL = Buffer.alloc(1);

const SLOTS = 16;
const SLOT = 256 << 10;

export interface FileToRead {
  host: Buffer | string;
  size: number;
  /** statKey (engine/manifest.ts) the file must still have, when known. */
  sig?: string;
  /** For messages: the path inside the archive. */
  shown: string;
}

// The ring carries a stream of records, one per file: its size (or, when it cannot be
// read, minus the length of a message, minus one, then the message), its bytes, then a
// trailer (0, or a message as before: it changed while being read). A slot is handed
// over when it is full or when a batch of files ends, so a handover carries many small
// files, not one. A slot's state: 0 free (the reader's to fill), 1 full (ours to take).
const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const { sab, slots, slot } = workerData;
const state = new Int32Array(sab, slots * slot, slots + 2);
const lengths = new Int32Array(sab, slots * slot + (slots + 2) * 4, slots);
let k = 0;
let buffer = null;
let used = 0;
Atomics.store(state, slots, 1);
function current() {
  if (buffer) return buffer;
  while (Atomics.load(state, k) !== 0) {
    if (Atomics.load(state, slots + 1) === 1) throw new Error("stopped");
    Atomics.wait(state, k, 1, 200);
  }
  buffer = Buffer.from(sab, k * slot, slot);
  used = 0;
  return buffer;
}
function ship() {
  if (!buffer) return;
  lengths[k] = used;
  Atomics.store(state, k, 1);
  Atomics.notify(state, k);
  k = (k + 1) % slots;
  buffer = null;
}
function bytes(src) {
  for (let at = 0; at < src.length;) {
    current();
    const n = Math.min(slot - used, src.length - at);
    src.copy(buffer, used, at, at + n);
    used += n;
    at += n;
    if (used === slot) ship();
  }
}
const int = (v) => { const b = Buffer.alloc(4); b.writeInt32LE(v); bytes(b); };
const message = (text) => { const b = Buffer.from(text).subarray(0, 4096); int(-b.length - 1); bytes(b); };
function* files(batch) {
  const paths = Buffer.from(batch.paths.buffer, batch.paths.byteOffset, batch.paths.byteLength);
  const sigs = batch.sigs.split("\\n");
  for (let i = 0, at = 0; i < batch.sizes.length; i++) {
    const end = paths.indexOf(0, at);
    yield { host: paths.subarray(at, end), size: batch.sizes[i], sig: sigs[i] };
    at = end + 1;
  }
}
parentPort.on("message", (batch) => {
  if (batch === null) return parentPort.close();
  try {
    for (const file of files(batch)) {
      let fd;
      try {
        fd = fs.openSync(file.host, "r");
        const st = fs.fstatSync(fd);
        const key = st.ino + ":" + st.mtimeMs + ":" + st.size + ":" + st.mode;
        if ((file.sig && key !== file.sig) || st.size !== file.size) {
          message("changed:" + st.size);
          continue;
        }
      } catch (error) {
        if (fd !== undefined) fs.closeSync(fd);
        message("error:" + (error.code || error.message));
        continue;
      }
      int(file.size);
      let done = 0;
      try {
        while (done < file.size) {
          current();
          const n = fs.readSync(fd, buffer, used, Math.min(slot - used, file.size - done), null);
          if (n === 0) break;
          used += n;
          done += n;
          if (used === slot) ship();
        }
      } catch (error) {
        if (error.message === "stopped") throw error;
      } finally {
        fs.closeSync(fd);
      }
      if (done < file.size) {
        bytes(Buffer.alloc(file.size - done));
        message("shrank:" + done);
      } else int(0);
    }
    ship();
  } catch {
    parentPort.close();
  }
});
`;

/** One reader thread and the stream it fills. */
class Reader {
  private k = 0;
  private pos = 0;
  private readonly started = Date.now();
  constructor(
    private readonly sab: SharedArrayBuffer,
    private readonly state: Int32Array,
    private readonly lengths: Int32Array,
    readonly worker: import("node:worker_threads").Worker,
  ) {}

  /** The next `max` bytes or fewer (up to the end of the current slot), waiting for them. */
  private take(max: number): Buffer {
    while (Atomics.load(this.state, this.k) !== 1) {
      if (Atomics.load(this.state, SLOTS) === 0 && Date.now() - this.started > 20_000) throw new Error("the reading thread did not start");
      Atomics.wait(this.state, this.k, 0, 200);
    }
    const n = Math.min(max, this.lengths[this.k] - this.pos);
    const chunk = Buffer.from(this.sab, this.k * SLOT + this.pos, n);
    this.pos += n;
    return chunk;
  }

  /** Give back the slot when it has been read to its end. */
  private advance(): void {
    if (Atomics.load(this.state, this.k) === 1 && this.pos === this.lengths[this.k]) {
      Atomics.store(this.state, this.k, 0);
      Atomics.notify(this.state, this.k);
      this.k = (this.k + 1) % SLOTS;
      this.pos = 0;
    }
  }

  private bytes(n: number, take: (chunk: Buffer) => void): void {
    for (let left = n; left > 0;) {
      this.advance();
      const chunk = this.take(left);
      take(chunk);
      left -= chunk.length;
    }
    this.advance();
  }

  private int(): number {
    const parts: Buffer[] = [];
    this.bytes(4, (c) => parts.push(Buffer.from(c)));
    return Buffer.concat(parts).readInt32LE(0);
  }

  private message(code: number): string {
    const parts: Buffer[] = [];
    this.bytes(-code - 1, (c) => parts.push(Buffer.from(c)));
    return Buffer.concat(parts).toString();
  }

  /** The next file's bytes, handed to `take`; or why it could not be read. */
  read(file: FileToRead, take: (chunk: Buffer) => void): string | undefined {
    const size = this.int();
    if (size < 0) return this.message(size);
    this.bytes(size, take);
    const trailer = this.int();
    return trailer < 0 ? this.message(trailer) : undefined;
  }

  stop(): void {
    Atomics.store(this.state, SLOTS + 1, 1);
    for (let k = 0; k < SLOTS; k++) Atomics.notify(this.state, k);
    this.worker.postMessage(null);
  }
}

/** Reader threads, fed files in batches and read back in the same order. */
export class Prefetcher {
  private nextReader = 0;
  private queued = 0;
  private constructor(private readonly readers: Reader[]) {}

  /** `threads` readers, or undefined where worker threads cannot start. */
  static start(threads: number): Prefetcher | undefined {
    if (process.env.CRECIPE_THREADS === "0") return undefined;
    try {
      const { Worker } = require("node:worker_threads") as typeof import("node:worker_threads");
      const readers = Array.from({ length: threads }, () => {
        const sab = new SharedArrayBuffer(SLOTS * SLOT + (SLOTS + 2) * 4 + SLOTS * 4);
        const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { sab, slots: SLOTS, slot: SLOT }, resourceLimits: SMALL_HEAP });
        worker.unref();
        return new Reader(sab, new Int32Array(sab, SLOTS * SLOT, SLOTS + 2), new Int32Array(sab, SLOTS * SLOT + (SLOTS + 2) * 4, SLOTS), worker);
      });
      return new Prefetcher(readers);
    } catch {
      return undefined;
    }
  }

  /** Queue files to read, in the order they will be taken: the n-th goes to reader n mod threads. */
  queue(files: FileToRead[]): void {
    // One buffer of NUL-ended paths, one array of sizes, one string of signatures: a
    // message that costs a copy, not a clone of an object per file.
    const parts = this.readers.map(() => ({ paths: [] as Buffer[], sizes: [] as number[], sigs: [] as string[] }));
    for (const f of files) {
      const part = parts[this.queued++ % this.readers.length];
      part.paths.push(Buffer.from(f.host), NUL);
      part.sizes.push(f.size);
      part.sigs.push(f.sig ?? "");
    }
    parts.forEach((part, i) => {
      if (part.sizes.length) this.readers[i].worker.postMessage({ paths: Buffer.concat(part.paths), sizes: Float64Array.from(part.sizes), sigs: part.sigs.join("\n") });
    });
  }

  /**
   * Hand the next queued file's bytes to `take`, a chunk at a time (each chunk is only
   * valid during the call). Throws a CrecipeError when the file changed or is unreadable.
   */
  read(file: FileToRead, take: (chunk: Buffer) => void, target: string, tree: string | undefined): void {
    const reader = this.readers[this.nextReader];
    this.nextReader = (this.nextReader + 1) % this.readers.length;
    const why = reader.read(file, take);
    if (why) throw problem(file, why, target, tree);
  }

  stop(): void {
    for (const reader of this.readers) reader.stop();
  }
}

/** The error for a file that is not what its tree's manifest says, or cannot be read. */
export function problem(file: FileToRead, why: string, target: string, tree: string | undefined): CrecipeError {
  const colon = why.indexOf(":");
  const kind = why.slice(0, colon);
  const detail = why.slice(colon + 1);
  if (kind === "error") return new CrecipeError(`cannot read ${file.shown}: ${detail}`, { target, fix: "make the file readable to the user who builds" });
  const what = kind === "shrank" ? `shrank while packing (${file.size} → ${detail} bytes)` : `changed after ${tree ?? "its tree"} was built (${file.size} → ${detail} bytes)`;
  return new CrecipeError(`${file.shown} ${what}`, {
    target,
    fix: tree
      ? `something edited out/${tree} by hand: run crecipe again with --check, which finds and rebuilds it`
      : "something is writing into it; run again when it is done",
  });
}
