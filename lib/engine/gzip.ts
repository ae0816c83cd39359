/**
 * gz() and a registry push's gzip: the input cut into content-defined pieces, each piece
 * one gzip member (formats/deflate.ts), compressed on every core and written in order,
 * hashed on the way. The bytes do not depend on the number of threads or on how the input
 * was fed: a piece is cut where its content says and compressed on its own.
 *
 * ```ts
 * const gz = GzipWriter.open(out, 6, expectedInputSize);
 * await gz.write(bytes); …
 * const { size, sha256 } = await gz.close();
 * ```
 */
import * as fs from "node:fs";
import type { Worker } from "node:worker_threads";
import { Chunker } from "../formats/chunks.ts";
import { checkGzipLevel, deflateWasm, GZ_CHUNKS, GzipMembers } from "../formats/deflate.ts";
import { OutputFile } from "./io.ts";
import { cpuCount, MESSAGE_HEAP, startThread, THREAD_BYTES, threadsWanted } from "./threads.ts";

/** Whole pieces, about this many bytes of them, go to a thread at once. */
const BATCH = 1 << 20;

// A thread: batches of pieces in ({ seq, data, sizes, out }), their members out ({ seq,
// data, input }). Buffers go back and forth (transferred), so none is allocated per batch:
// a fresh one costs a page fault per 4 KiB.
const SOURCE = `
const { parentPort } = require("node:worker_threads");
const { wasm, level, capacity } = workerData;
const e = new WebAssembly.Instance(new WebAssembly.Module(wasm)).exports;
if (!e.setup(level, capacity)) throw new Error("the compressor could not get its memory");
parentPort.on("message", ({ seq, data, sizes, out }) => {
  let total = 0, at = 0;
  for (const size of sizes) {
    new Uint8Array(e.memory.buffer, e.input(), size).set(data.subarray(at, at + size));
    at += size;
    const n = e.gzip(size);
    if (n === 0) throw new Error("a piece of " + size + " bytes did not fit its output");
    if (!out || total + n > out.length) {
      const bigger = new Uint8Array(Math.max(total + n, (out ? out.length : 0) * 2, data.length + (data.length >> 6) + 4096));
      if (out) bigger.set(out.subarray(0, total));
      out = bigger;
    }
    out.set(new Uint8Array(e.memory.buffer, e.output(), n), total);
    total += n;
  }
  parentPort.postMessage({ seq, data: out.subarray(0, total), input: data }, [out.buffer, data.buffer]);
});
`;

export class GzipWriter {
  private readonly chunker = new Chunker(GZ_CHUNKS);
  private readonly out: OutputFile;
  /** Input not yet sent: `filled` bytes, of which the pieces in `sizes` are whole. */
  private pending: Uint8Array<ArrayBuffer> = new Uint8Array(BATCH + GZ_CHUNKS.max);
  private filled = 0;
  private sizes: number[] = [];
  private whole = 0;
  private inputSize = 0;
  /** Batches sent (seq) and written (next), members come back out of order. */
  private sent = 0;
  private next = 0;
  private readonly done = new Map<number, Uint8Array<ArrayBuffer>>();
  /** Buffers back from the threads, to send again: inputs, outputs. */
  private readonly inputs: Uint8Array<ArrayBuffer>[] = [];
  private readonly outputs: Uint8Array<ArrayBuffer>[] = [];
  private readonly workers: Worker[] = [];
  private members?: GzipMembers;
  private failure?: Error;
  private wake?: () => void;
  private stopped = false;

  private constructor(path: string, private readonly level: number, threads: number) {
    checkGzipLevel(level);
    const wasm = deflateWasm();
    this.out = new OutputFile(path);
    try {
      for (let i = 0; i < threads; i++) {
        const worker = startThread(SOURCE, { wasm, level, capacity: GZ_CHUNKS.max }, MESSAGE_HEAP);
        worker.on("message", ({ seq, data, input }: { seq: number; data: Uint8Array<ArrayBuffer>; input: Uint8Array<ArrayBuffer> }) => {
          this.inputs.push(input);
          try {
            this.arrived(seq, data);
          } catch (error) {
            this.fail(error as Error); // writing failed (a full disk): the writer's caller gets it
          }
        });
        worker.on("error", (error) => this.fail(new Error(`gzip: ${error.message}`)));
        worker.on("exit", (code) => code !== 0 && this.fail(new Error(`gzip: a thread stopped (exit code ${code})`)));
        this.workers.push(worker);
      }
    } catch {
      // threads cannot start here: compress on this thread
    }
  }

  /** A writer of gzip into `path`; inputs of at least THREAD_BYTES (`expectedSize`) are compressed on every core. */
  static open(path: string, level: number, expectedSize: number): GzipWriter {
    const threads = expectedSize >= THREAD_BYTES && threadsWanted() ? Math.min(cpuCount(), 8) : 0;
    return new GzipWriter(path, level, threads);
  }

  /** Compress `data` (copied: the caller may reuse it). */
  async write(data: Uint8Array): Promise<void> {
    this.inputSize += data.length;
    const cuts = this.chunker.push(data);
    let from = 0;
    for (const cut of cuts) {
      this.take(data.subarray(from, cut));
      this.sizes.push(this.filled - this.whole);
      this.whole = this.filled;
      from = cut;
      if (this.whole >= BATCH) await this.send();
    }
    this.take(data.subarray(from));
  }

  /** Compress what is left, wait for every member, and close: the gzip file's size and sha256. */
  async close(): Promise<{ size: number; sha256: string }> {
    const last = this.chunker.finish();
    if (last > 0 || this.inputSize === 0) this.sizes.push(last); // an empty input is one empty member
    this.whole = this.filled;
    await this.send();
    while (this.next < this.sent) await this.waitForOne();
    this.stopThreads();
    const sha256 = this.out.close();
    return { size: this.out.size, sha256 };
  }

  /** Stop: nothing more is written (the caller removes the file). */
  abandon(): void {
    this.stopThreads();
    this.out.abandon();
  }

  private take(bytes: Uint8Array): void {
    if (this.filled + bytes.length > this.pending.length) {
      const bigger = new Uint8Array(Math.max(this.pending.length * 2, this.filled + bytes.length));
      bigger.set(this.pending.subarray(0, this.filled));
      this.pending = bigger;
    }
    this.pending.set(bytes, this.filled);
    this.filled += bytes.length;
  }

  /** Send the whole pieces pending to a thread (or compress them here), the rest stays. */
  private async send(): Promise<void> {
    if (this.sizes.length === 0) return;
    const data = this.pending;
    const sizes = this.sizes;
    const rest = this.filled - this.whole;
    this.pending = this.inputs.pop() ?? new Uint8Array(BATCH + GZ_CHUNKS.max);
    if (this.pending.length < rest) this.pending = new Uint8Array(rest + BATCH);
    this.pending.set(data.subarray(this.whole, this.filled));
    this.filled = rest;
    this.whole = 0;
    this.sizes = [];
    const seq = this.sent++;
    if (this.workers.length === 0) {
      this.members ??= new GzipMembers(this.level);
      this.arrived(seq, this.members.gzip(data, sizes));
      this.inputs.push(data);
      return;
    }
    const out = this.outputs.pop();
    this.workers[seq % this.workers.length]!.postMessage({ seq, data, sizes, out }, out ? [data.buffer, out.buffer] : [data.buffer]);
    while (this.sent - this.next > 2 * this.workers.length) await this.waitForOne();
  }

  private arrived(seq: number, data: Uint8Array<ArrayBuffer>): void {
    if (this.stopped) return; // a thread's answer after abandon(): the file is closed
    this.done.set(seq, data);
    for (let members; (members = this.done.get(this.next)); this.next++) {
      this.done.delete(this.next);
      this.out.write(members);
      if (this.workers.length) this.outputs.push(new Uint8Array(members.buffer));
    }
    this.wake?.();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wake?.();
  }

  private async waitForOne(): Promise<void> {
    if (this.failure) throw this.failure;
    const before = this.next;
    while (this.next === before && !this.failure) await new Promise<void>((resolve) => (this.wake = resolve));
    this.wake = undefined;
    if (this.failure) throw this.failure;
  }

  private stopThreads(): void {
    this.stopped = true;
    for (const worker of this.workers) {
      worker.removeAllListeners("exit");
      void worker.terminate();
    }
    this.workers.length = 0;
  }
}

/**
 * gzip what `feed` writes (`expectedSize` bytes or so) into `output`: its size and sha256.
 * If feeding fails, nothing more is written and the error is thrown.
 */
export async function gzipStream(output: string, level: number, expectedSize: number, feed: (gz: GzipWriter) => Promise<unknown>): Promise<{ size: number; sha256: string }> {
  const gz = GzipWriter.open(output, level, expectedSize);
  try {
    await feed(gz);
    return await gz.close();
  } catch (error) {
    gz.abandon();
    throw error;
  }
}

/** gzip the file `input` into `output`: its size and sha256. */
export async function gzipFile(input: string, output: string, level: number): Promise<{ size: number; sha256: string }> {
  const fd = fs.openSync(input, "r");
  try {
    return await gzipStream(output, level, fs.fstatSync(fd).size, async (gz) => {
      const buffer = new Uint8Array(BATCH);
      for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0;) await gz.write(buffer.subarray(0, n));
    });
  } finally {
    fs.closeSync(fd);
  }
}
