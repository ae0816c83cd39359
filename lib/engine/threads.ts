/**
 * Helper threads (the packer's, the output hash's, fetch's file hash), all started one
 * way. Node takes ~75 ms here to start one (a new isolate bootstrapping Node's internals),
 * so only work on at least THREAD_BYTES uses one.
 *
 * A thread's source is what an eval'd worker runs, with `require` and `workerData` (its
 * data: shared memory in it is shared) in scope.
 */
import { createRequire } from "node:module";
import * as os from "node:os";
import type { Worker } from "node:worker_threads";

const require = createRequire(import.meta.url);

/** Helper threads hash, read and write; their own JavaScript heap stays tiny. */
export const SMALL_HEAP = { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2, codeRangeSizeMb: 4, stackSizeMb: 1 };

/**
 * Threads that are sent data in messages (gzip's): Deno drops a message of 128 KiB or more
 * to a thread whose old generation is SMALL_HEAP's 8 MB (2.9: no error, the thread waits).
 */
export const MESSAGE_HEAP = { ...SMALL_HEAP, maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 4 };

/** Bytes of work that pay for a thread's start: less is done on the thread that has it. */
export const THREAD_BYTES = 16 << 20;

/** The cores this process may use (the build's default jobs, gzip's threads). */
export function cpuCount(): number {
  return os.availableParallelism?.() ?? os.cpus().length;
}

/** Whether helper threads are to be used (CRECIPE_THREADS=0: no). */
export const threadsWanted = () => process.env.CRECIPE_THREADS !== "0";

/** A thread running `source` with `data` as its workerData. Throws where threads cannot start. */
export function startThread(source: string, data: unknown, limits = SMALL_HEAP): Worker {
  const { Worker } = require("node:worker_threads") as typeof import("node:worker_threads");
  return new Worker(`const { workerData } = require("node:worker_threads");\n${source}`, { eval: true, workerData: data, resourceLimits: limits });
}
