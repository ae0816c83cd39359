/**
 * Helper threads (the packer's, the output hash's), all started one way: a small boot
 * script that waits for its source and data in one message. Node takes ~75 ms here to
 * start one (a new isolate bootstrapping Node's internals), so only work large enough to
 * pay for that uses one.
 *
 * A thread's source is the body of a function of (require, workerData): what an eval'd
 * worker would run, with its data handed in instead of imported.
 */
import { createRequire } from "node:module";
import type { Worker } from "node:worker_threads";

const require = createRequire(import.meta.url);

/** Helper threads hash, read and write; their own JavaScript heap stays tiny. */
export const SMALL_HEAP = { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2, codeRangeSizeMb: 4, stackSizeMb: 1 };

// A started thread waits for one message: the source to run and its data.
const BOOT = `require("node:worker_threads").parentPort.once("message", (m) => new Function("require", "workerData", m.source)(require, m.data));`;

/** Whether helper threads are to be used (CRECIPE_THREADS=0: no). */
export const threadsWanted = () => process.env.CRECIPE_THREADS !== "0";

/** A thread running `source` with `data` (shared memory in it is shared). Throws where threads cannot start. */
export function startThread(source: string, data: unknown): Worker {
  const { Worker } = require("node:worker_threads") as typeof import("node:worker_threads");
  const worker = new Worker(BOOT, { eval: true, resourceLimits: SMALL_HEAP });
  worker.postMessage({ source, data });
  return worker;
}
