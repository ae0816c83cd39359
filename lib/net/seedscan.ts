/**
 * Chunking a seed on another thread: it reads the seed into a ring of shared-memory
 * slots, splits it exactly as formats/chunks.ts's Chunker does (the same class, its
 * source run there) and hashes each chunk, while this thread looks the chunks up and
 * writes the ones the new file wants straight from the slots, hashing the new file as it
 * goes: the seed is read once, and the two threads share the hashing.
 */
import { startThread, threadsWanted } from "../engine/threads.ts";
import { Chunker, type ChunkParams, GEAR, topBits } from "../formats/chunks.ts";


const SLOTS = 8;
const SLOT = 1 << 20;

/** A chunk of the seed: where it is, its sha256, and its bytes (valid only during the callback). */
export interface SeedChunk {
  offset: number;
  size: number;
  digest: string;
  bytes: () => Buffer;
}

// Slot states: 0 free (the reader's to fill), 1 full (ours). A message per slot says
// what is in it: its length, and the chunks that end in it with their sha256.
const WORKER_SOURCE = (chunker: string, topBits: string) => `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const { createHash } = require("node:crypto");
const GEAR = workerData.gear;
const topBits = ${topBits};
// What the Chunker's source refers to, here: its table and mask helper (from formats/chunks.ts),
// no parameter check (done on the other side), esbuild's name helper, its default params.
const checkParams = () => {};
const __name = (f) => f;
const CHUNK_PARAMS = undefined;
const Chunker = ${chunker};
const { file, params, sab, slots, slot } = workerData;
const state = new Int32Array(sab, slots * slot, slots + 1);
try {
  const chunker = new Chunker(params);
  const fd = fs.openSync(file, "r");
  let start = 0;
  let length = 0;
  let hash = createHash("sha256"); // of the chunk being read
  for (let k = 0, at = 0; ; k = (k + 1) % slots) {
    while (Atomics.load(state, k) !== 0) {
      if (Atomics.load(state, slots) === 1) process.exit(0);
      Atomics.wait(state, k, 1, 200);
    }
    const block = Buffer.from(sab, k * slot, slot);
    const n = fs.readSync(fd, block, 0, slot, null);
    const ends = [];
    const digests = [];
    const close = () => {
      ends.push(start + length);
      digests.push(hash.digest("hex"));
      hash = createHash("sha256");
      start += length;
      length = 0;
    };
    if (n === 0) {
      if (chunker.finish() > 0) close();
      parentPort.postMessage({ slot: -1, at, n: 0, ends, digests });
      break;
    }
    const data = block.subarray(0, n);
    let from = 0;
    for (const cut of chunker.push(data)) {
      hash.update(data.subarray(from, cut));
      length += cut - from;
      close();
      from = cut;
    }
    hash.update(data.subarray(from));
    length += n - from;
    Atomics.store(state, k, 1);
    parentPort.postMessage({ slot: k, at, n, ends, digests });
    at += n;
  }
} catch (error) {
  parentPort.postMessage({ error: String(error && (error.code || error.message)) });
}
`;

/**
 * Chunk `file` on another thread, handing each chunk to `each` in order (return false to
 * stop: nothing more is wanted). Undefined where worker threads cannot start.
 */
export function scanOnThread(file: string, params: ChunkParams, each: (chunk: SeedChunk) => boolean, onBlock: () => Promise<void>): Promise<void> | undefined {
  if (!threadsWanted() || params.max > SLOT) return undefined;
  let worker: import("node:worker_threads").Worker;
  const sab = new SharedArrayBuffer(SLOTS * SLOT + (SLOTS + 1) * 4);
  const state = new Int32Array(sab, SLOTS * SLOT, SLOTS + 1);
  try {
    worker = startThread(WORKER_SOURCE(Chunker.toString(), topBits.toString()), { file, params, gear: GEAR, sab, slots: SLOTS, slot: SLOT });
  } catch {
    return undefined;
  }
  // The slots not yet given back, oldest first: a chunk may begin in an earlier one.
  const held: { slot: number; at: number; n: number }[] = [];
  const release = (slot: number) => {
    Atomics.store(state, slot, 0);
    Atomics.notify(state, slot);
  };
  const partsAt = (offset: number, size: number): Buffer[] => {
    const parts: Buffer[] = [];
    for (const h of held) {
      const from = Math.max(offset, h.at);
      const to = Math.min(offset + size, h.at + h.n);
      if (from < to) parts.push(Buffer.from(sab, h.slot * SLOT + (from - h.at), to - from));
    }
    return parts;
  };
  return new Promise<void>((resolve, reject) => {
    let busy = Promise.resolve();
    let stopped = false;
    let chunkStart = 0; // where the chunk being read began
    const stop = () => {
      stopped = true;
      Atomics.store(state, SLOTS, 1);
      for (let k = 0; k < SLOTS; k++) Atomics.notify(state, k);
      void worker.terminate();
    };
    worker.on("error", (error) => (stop(), reject(error)));
    worker.on("message", (m: { error?: string; slot: number; at: number; n: number; ends: number[]; digests: string[] }) => {
      busy = busy.then(async () => {
        if (stopped) return;
        if (m.error) return stop(), reject(new Error(`reading the seed: ${m.error}`));
        if (m.slot >= 0) held.push({ slot: m.slot, at: m.at, n: m.n });
        for (let i = 0; i < m.ends.length; i++) {
          const offset = chunkStart;
          const end = m.ends[i];
          chunkStart = end;
          const bytes = () => {
            const parts = partsAt(offset, end - offset);
            return parts.length === 1 ? parts[0] : Buffer.concat(parts);
          };
          if (!each({ offset, size: end - offset, digest: m.digests[i], bytes })) return stop(), resolve();
        }
        // A chunk is at most one slot long (params.max ≤ SLOT): the next one begins in the newest slot.
        while (held.length > 1 || (m.slot < 0 && held.length)) release(held.shift()!.slot);
        if (m.slot < 0) return stop(), resolve();
        await onBlock();
      }).catch((error) => (stop(), reject(error)));
    });
  });
}

