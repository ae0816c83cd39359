/**
 * gzip with the same bytes on every machine: libdeflate's compressor, compiled to
 * WebAssembly (formats/deflate-wasm.ts; scripts/deflate-wasm/build.sh builds it).
 *
 * The input is cut where its content says (the Chunker with GZ_CHUNKS: pieces of ~64 KiB)
 * and each piece becomes one gzip member. Members one after another are one gzip file
 * (RFC 1952, 2.2): gunzip, Go's gzip (Docker, containerd, skopeo, umoci), Python and Node
 * read them as one stream.
 * - A change in the input changes only the members around it, as `gzip --rsyncable` does.
 * - Members are independent, so any number of threads compress them, in any order, to the
 *   same bytes (engine/gzip.ts).
 * - libdeflate at level 6 takes about half zlib's time per byte here (WebAssembly
 *   included).
 *
 * ```ts
 * const members = new GzipMembers(6);
 * const gz = members.gzip(data, [piece1, piece2]); // sizes of consecutive pieces of data
 * ```
 */
import { Buffer } from "node:buffer";
import { type ChunkParams } from "./chunks.ts";
import { DEFLATE_WASM } from "./deflate-wasm.ts";
import { FormatError } from "./entry.ts";

/**
 * Where gzip members are cut: content-defined, ~64 KiB (16 KiB to 256 KiB). An edit costs
 * the members around it, ~64 KiB of input: at ~128 KiB a 100 KB file replaced in the
 * 200 MB layer changed 1.30× the bytes `gzip --rsyncable`'s did, at ~64 KiB 1.07×. Each
 * member starts without the 32 KiB of history a single stream carries over, which makes
 * the output ~0.2 % larger than `pigz --rsyncable`'s on that layer (at ~128 KiB: 0.4 %
 * smaller).
 */
export const GZ_CHUNKS: Readonly<ChunkParams> = Object.freeze({ min: 16 * 1024, normal: 64 * 1024, max: 256 * 1024 });

/** libdeflate's levels: 0 (stored) to 12 (slowest, smallest); 6 is gzip's default. */
export const GZ_LEVELS = { min: 0, max: 12, default: 6 } as const;

/** A level gz() can be asked for, or a FormatError that says which can. */
export function checkGzipLevel(level: number): void {
  if (!Number.isInteger(level) || level < GZ_LEVELS.min || level > GZ_LEVELS.max) {
    throw new FormatError(`gzip level ${level}: levels are whole numbers from ${GZ_LEVELS.min} to ${GZ_LEVELS.max} (default ${GZ_LEVELS.default})`);
  }
}

/**
 * A compressor's WebAssembly module (committed as base64), as bytes; a FormatError where
 * the runtime has no WebAssembly.
 */
export function wasmBytes(base64: string): Uint8Array {
  if (typeof WebAssembly !== "object") {
    throw new FormatError("gzip needs WebAssembly, and this JavaScript runtime has none (node --jitless?)");
  }
  return Buffer.from(base64, "base64"); // atob and a loop: ~50 ms here
}

let bytes: Uint8Array | undefined;

/** The compressor's WebAssembly module, as bytes (what a thread compiles). */
export function deflateWasm(): Uint8Array {
  bytes ??= wasmBytes(DEFLATE_WASM);
  return bytes;
}

interface Exports {
  memory: WebAssembly.Memory;
  setup(level: number, capacity: number): number;
  input(): number;
  output(): number;
  gzip(n: number): number;
}

/** One compressor: pieces in, one gzip member each out. Not shared between threads. */
export class GzipMembers {
  private readonly e: Exports;

  constructor(level: number = GZ_LEVELS.default, readonly capacity = GZ_CHUNKS.max) {
    checkGzipLevel(level);
    this.e = new WebAssembly.Instance(new WebAssembly.Module(deflateWasm() as BufferSource)).exports as unknown as Exports;
    if (!this.e.setup(level, capacity)) throw new FormatError("gzip: the compressor could not get its memory");
  }

  /** Consecutive pieces of `data`, `sizes` long (each ≤ capacity), each as one gzip member, in one buffer. */
  gzip(data: Uint8Array, sizes: number[]): Uint8Array<ArrayBuffer> {
    const members: Uint8Array<ArrayBuffer>[] = [];
    let total = 0;
    let at = 0;
    for (const size of sizes) {
      if (size > this.capacity) throw new FormatError(`gzip: a piece of ${size} bytes is over the compressor's ${this.capacity}`);
      new Uint8Array(this.e.memory.buffer, this.e.input(), size).set(data.subarray(at, at + size));
      at += size;
      const n = this.e.gzip(size);
      if (n === 0) throw new FormatError(`gzip: a piece of ${size} bytes did not fit its output`);
      members.push(new Uint8Array(this.e.memory.buffer, this.e.output(), n).slice());
      total += n;
    }
    if (members.length === 1) return members[0]!;
    const out = new Uint8Array(total);
    let to = 0;
    for (const member of members) {
      out.set(member, to);
      to += member.length;
    }
    return out;
  }
}
