/**
 * The Chunker's inner loop (formats/chunks.ts) as a tiny WebAssembly function: the gear
 * hash rolled over bytes until `(hash & mask) == 0`. In JavaScript the same loop runs at
 * ~30 ns a byte until V8 has compiled it, and its first optimised versions are thrown
 * away each time a rare branch (a cut, a chunk at `max`) is first taken: ~20 ms for the
 * first half MiB a fresh process splits, which is most of what a fetch splits. WebAssembly
 * is compiled before it runs: ~1 ns a byte from the first byte.
 *
 * The module is written out here byte by byte (~110 bytes; no toolchain at build time).
 * Its memory: GEAR at 0 (256 × i32), the hash after a call at 1024, the bytes to scan
 * from 2048 (up to WINDOW of them at a time).
 *
 *   (func $scan (param $at i32) (param $end i32) (param $hash i32) (param $mask i32) (result i32)
 *     (loop $next
 *       (if (i32.ge_u $at $end) (then (i32.store (i32.const 1024) $hash) (return (i32.const -1))))
 *       (local.set $hash (i32.add (i32.shl $hash (i32.const 1))
 *                                 (i32.load (i32.shl (i32.load8_u $at) (i32.const 2)))))
 *       (local.set $at (i32.add $at (i32.const 1)))
 *       (if (i32.eqz (i32.and $hash $mask)) (then (i32.store (i32.const 1024) $hash) (return $at)))
 *       (br $next))
 *     unreachable)
 */

const HASH_AT = 1024;
const DATA_AT = 2048;
/** Bytes scanned per call at most (the memory holds them after the table). */
export const WINDOW = 64 * 1024;

// The function's body: no locals, then the code of the comment above.
const BODY = [
  0x00, // no locals
  0x03, 0x40, // loop
  0x20, 0x00, 0x20, 0x01, 0x4f, // at >= end
  0x04, 0x40, 0x41, 0x80, 0x08, 0x20, 0x02, 0x36, 0x02, 0x00, 0x41, 0x7f, 0x0f, 0x0b, // if: mem[1024] = hash; return -1
  0x20, 0x02, 0x41, 0x01, 0x74, // hash << 1
  0x20, 0x00, 0x2d, 0x00, 0x00, 0x41, 0x02, 0x74, 0x28, 0x02, 0x00, // GEAR[mem8[at]]
  0x6a, 0x21, 0x02, // hash = the sum
  0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00, // at += 1
  0x20, 0x02, 0x20, 0x03, 0x71, 0x45, // (hash & mask) == 0
  0x04, 0x40, 0x41, 0x80, 0x08, 0x20, 0x02, 0x36, 0x02, 0x00, 0x20, 0x00, 0x0f, 0x0b, // if: mem[1024] = hash; return at
  0x0c, 0x00, // br loop
  0x0b, 0x00, 0x0b, // end loop, unreachable, end
];
/** A section: its id, its length (one byte: all are short), its bytes. */
const section = (id: number, bytes: number[]) => [id, bytes.length, ...bytes];
const BYTES = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  ...section(1, [0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f]), // types: (i32 i32 i32 i32) -> i32
  ...section(3, [0x01, 0x00]), // functions: one, of type 0
  ...section(5, [0x01, 0x00, 0x02]), // memory: one, 2 pages (128 KiB)
  ...section(7, [0x02, 0x04, 0x73, 0x63, 0x61, 0x6e, 0x00, 0x00, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00]), // exports: "scan" func 0, "mem" memory 0
  ...section(10, [0x01, BODY.length, ...BODY]), // code: one body
]);

/**
 * Rolls the gear hash over data[from, to) (at most WINDOW bytes) until `(hash & mask) ==
 * 0`: where it stops (after that byte), or -1 at `to`; `hash` is then the hash there.
 */
export interface GearScanner {
  scan(data: Uint8Array, from: number, to: number, hash: number, mask: number): number;
  hash: number;
}

/** The WebAssembly scanner: the bytes are copied into its memory, a window at a time. */
class WasmScan implements GearScanner {
  private readonly scanFn: (at: number, end: number, hash: number, mask: number) => number;
  private readonly bytes: Uint8Array;
  private readonly words: Int32Array;
  hash = 0;

  constructor(gear: Int32Array) {
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(BYTES));
    this.scanFn = exports.scan as WasmScan["scanFn"];
    const memory = exports.mem as WebAssembly.Memory;
    this.bytes = new Uint8Array(memory.buffer);
    this.words = new Int32Array(memory.buffer);
    this.words.set(gear, 0);
  }

  scan(data: Uint8Array, from: number, to: number, hash: number, mask: number): number {
    this.bytes.set(data.subarray(from, to), DATA_AT);
    const at = this.scanFn(DATA_AT, DATA_AT + to - from, hash, mask);
    this.hash = this.words[HASH_AT / 4];
    return at < 0 ? -1 : from + at - DATA_AT;
  }
}

/** The same loop in JavaScript: where WebAssembly is not there (--jitless) or has no memory to give. */
class JsScan implements GearScanner {
  hash = 0;

  constructor(private readonly gear: Int32Array) {}

  scan(data: Uint8Array, from: number, to: number, hash: number, mask: number): number {
    const gear = this.gear;
    for (let i = from; i < to;) {
      hash = ((hash << 1) + gear[data[i++]]) | 0;
      if ((hash & mask) === 0) {
        this.hash = hash;
        return i;
      }
    }
    this.hash = hash;
    return -1;
  }
}

let shared: GearScanner | undefined;

/**
 * The scanner of this thread for `gear`: one for all Chunkers (a scan is synchronous and
 * its hash read at once), since each WebAssembly instance costs ~0.15 ms and its memory.
 */
export function gearScanner(gear: Int32Array): GearScanner {
  if (!shared) {
    try {
      shared = new WasmScan(gear);
    } catch {
      shared = new JsScan(gear);
    }
  }
  return shared;
}
