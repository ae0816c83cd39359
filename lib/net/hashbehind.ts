/**
 * A file's sha256 on another thread, reading it back from the page cache as it is told
 * how far the file is final: fetch writes chunks wherever they go, and says so once the
 * ones before a point are all in place. The thread reads (~20 ms for 105 MB here) and
 * hashes (~60 ms) beside the fetching thread, which then only splits the seeds and writes.
 *
 * ```ts
 * const hasher = HashBehind.start(file);   // undefined where threads cannot start
 * hasher.advance(bytesFinal);              // as often as you like; cheap
 * const hex = await hasher.digest(size);   // once the whole file is final
 * ```
 */
import type { Worker } from "node:worker_threads";
import { startThread, threadsWanted } from "../engine/threads.ts";

// Shared state: [0] bytes final (BigInt64), then Int32s: [2] a count bumped at each
// advance (what the thread waits on), [3] 1 once digest() asks for the end, 2 to stop.
const SOURCE = `
const fs = require("node:fs");
const { createHash } = require("node:crypto");
const { parentPort } = require("node:worker_threads");
const { file, sab } = workerData;
const final = new BigInt64Array(sab, 0, 1);
const flags = new Int32Array(sab, 8, 2);
const hash = createHash("sha256");
const buffer = Buffer.allocUnsafe(1 << 20);
let fd = -1;
let at = 0;
try {
  for (;;) {
    const seen = Atomics.load(flags, 0);
    if (Atomics.load(flags, 1) === 2) break;
    const end = Number(Atomics.load(final, 0));
    if (end > at) {
      if (fd < 0) fd = fs.openSync(file, "r");
      while (at < end) {
        const n = fs.readSync(fd, buffer, 0, Math.min(buffer.length, end - at), at);
        if (n <= 0) throw new Error("the file is shorter than it was said to be (" + at + " of " + end + " bytes)");
        hash.update(buffer.subarray(0, n));
        at += n;
      }
      continue;
    }
    if (Atomics.load(flags, 1) === 1) {
      // digest() stores the end before it asks: read it again, it may have come in between.
      if (Number(Atomics.load(final, 0)) > at) continue;
      parentPort.postMessage({ digest: hash.digest("hex"), at });
      break;
    }
    Atomics.wait(flags, 0, seen, 1000);
  }
} catch (error) {
  parentPort.postMessage({ error: String(error && (error.code || error.message)) });
}
if (fd >= 0) fs.closeSync(fd);
`;

export class HashBehind {
  private readonly final: BigInt64Array;
  private readonly flags: Int32Array;
  private told = 0;
  private readonly answer: Promise<{ digest?: string; at?: number; error?: string }>;

  private constructor(private readonly worker: Worker, sab: SharedArrayBuffer) {
    this.final = new BigInt64Array(sab, 0, 1);
    this.flags = new Int32Array(sab, 8, 2);
    this.answer = new Promise((resolve) => {
      worker.once("message", resolve);
      worker.once("error", (error) => resolve({ error: error.message }));
      worker.once("exit", () => resolve({ error: "its thread stopped" }));
    });
    worker.unref(); // it never keeps the process alive: an error that skips stop() cannot hang it
  }

  /** A thread to hash `file` (opened when it is first told of a final byte); undefined where threads cannot start. */
  static start(file: string): HashBehind | undefined {
    if (!threadsWanted()) return undefined;
    const sab = new SharedArrayBuffer(16);
    try {
      return new HashBehind(startThread(SOURCE, { file, sab }), sab);
    } catch {
      return undefined;
    }
  }

  /** The file's first `bytes` are final: hash up to there. Wakes the thread only every 1 MiB (or to finish). */
  advance(bytes: number): void {
    if (bytes <= this.told) return;
    Atomics.store(this.final, 0, BigInt(bytes));
    if (bytes - this.told < 1 << 20) return;
    this.told = bytes;
    this.wake();
  }

  /** The sha256 (hex) of the file's first `size` bytes, once all are final (advance(size) first). */
  async digest(size: number): Promise<string> {
    this.advance(size);
    Atomics.store(this.flags, 1, 1);
    this.wake();
    this.worker.ref(); // the answer is awaited: the process must wait for it
    const answer = await this.answer;
    void this.worker.terminate();
    if (answer.error !== undefined || answer.at !== size) throw new Error(`hashing the file on another thread: ${answer.error ?? `${answer.at} of ${size} bytes hashed`}`);
    return answer.digest!;
  }

  /** Stop hashing (the file is to be hashed another way, or not at all). */
  stop(): void {
    Atomics.store(this.flags, 1, 2);
    this.wake();
    void this.worker.terminate();
  }

  private wake(): void {
    Atomics.add(this.flags, 0, 1);
    Atomics.notify(this.flags, 0);
  }
}
