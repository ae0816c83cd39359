/**
 * One gzip stream with the same bytes on every machine and under Node and Deno: zlib
 * 1.2.13's deflate compiled to WebAssembly (formats/zlib-wasm.ts;
 * scripts/zlib-wasm/build.sh builds it). The runtime's own zlib differs between Node and
 * Deno (and between Node's versions), so its bytes would too.
 *
 * For what must be one gzip member: a Linux initramfs, whose unpacker wants each member
 * to hold whole cpio archives. gz() (formats/deflate.ts) cuts its input into many members
 * instead, which is faster and resynchronises after an edit.
 *
 * ```ts
 * const stream = new GzipStream(6);
 * const put = (piece: Uint8Array) => out.write(piece); // a view: copy it before returning
 * stream.push(data, put);
 * stream.end(put);
 * ```
 */
import { wasmBytes } from "./deflate.ts";
import { FormatError } from "./entry.ts";
import { ZLIB_WASM } from "./zlib-wasm.ts";

interface Exports {
  memory: WebAssembly.Memory;
  setup(level: number): number;
  input(): number;
  inputSize(): number;
  output(): number;
  feed(n: number, finish: number): number;
  drain(): number;
  more(): number;
}

let module: WebAssembly.Module | undefined;

/** zlib's levels: 0 (stored) to 9. */
export const ZLIB_LEVELS = { min: 0, max: 9 } as const;

/** A gzip stream (no name, mtime 0) being written: bytes in, compressed pieces out. */
export class GzipStream {
  private readonly e: Exports;
  /** How much input the compressor takes at once, and how much of it is filled. */
  private readonly size: number;
  private filled = 0;
  private ended = false;

  constructor(level = 6) {
    if (!Number.isInteger(level) || level < ZLIB_LEVELS.min || level > ZLIB_LEVELS.max) {
      throw new FormatError(`gzip level ${level}: levels are whole numbers from ${ZLIB_LEVELS.min} to ${ZLIB_LEVELS.max}`);
    }
    module ??= new WebAssembly.Module(wasmBytes(ZLIB_WASM) as BufferSource);
    this.e = new WebAssembly.Instance(module).exports as unknown as Exports;
    if (!this.e.setup(level)) throw new FormatError("gzip: the compressor could not get its memory");
    this.size = this.e.inputSize();
  }

  /**
   * Compress `data`, handing `put` the compressed bytes it gives (often none), each piece a
   * view of the compressor's memory that is valid only until `put` returns.
   */
  push(data: Uint8Array, put: (piece: Uint8Array) => void): void {
    if (this.ended) throw new FormatError("gzip: the stream has ended");
    for (let at = 0; at < data.length;) {
      const n = Math.min(this.size - this.filled, data.length - at);
      new Uint8Array(this.e.memory.buffer, this.e.input() + this.filled, n).set(data.subarray(at, at + n));
      this.filled += n;
      at += n;
      if (this.filled === this.size) this.feed(false, put);
    }
  }

  /** The rest of the stream, with its trailer, handed to `put` as push() does. Nothing may be pushed after. */
  end(put: (piece: Uint8Array) => void): void {
    if (this.ended) throw new FormatError("gzip: the stream has ended");
    this.ended = true; // even if this fails: a second end() would feed a finished stream
    this.feed(true, put);
  }

  /**
   * Compress what the input holds. zlib is always fed whole inputs, so the bytes do not
   * depend on how the caller cut its writes.
   */
  private feed(finish: boolean, put: (piece: Uint8Array) => void): void {
    for (let k = this.e.feed(this.filled, finish ? 1 : 0); ; k = this.e.drain()) {
      if (k < 0) throw new FormatError("gzip: zlib's deflate failed");
      if (k > 0) put(new Uint8Array(this.e.memory.buffer, this.e.output(), k));
      if (!this.e.more()) break;
    }
    this.filled = 0;
  }
}
