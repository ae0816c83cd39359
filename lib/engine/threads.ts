/**
 * Helper threads, started before they are needed. Node takes ~75 ms here to start a worker
 * thread (a new isolate bootstrapping Node's internals): work that can tell early that it
 * will want one (a fetch that will split a seed) calls warmThreads(), and the thread starts
 * while other things are done (the index is read); startThread() then gives one of them
 * its work, or starts one.
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

const idle: Worker[] = [];
/** What takes an idle thread off the list when it fails or exits, to be removed when it is given work. */
const leaving = new WeakMap<Worker, () => void>();

function spawn(): Worker {
  const { Worker } = require("node:worker_threads") as typeof import("node:worker_threads");
  return new Worker(BOOT, { eval: true, resourceLimits: SMALL_HEAP });
}

/** Whether helper threads are to be used (CRECIPE_THREADS=0: no). */
export const threadsWanted = () => process.env.CRECIPE_THREADS !== "0";

/** Start threads until `n` wait idle (they keep no process alive while they wait). */
export function warmThreads(n: number): void {
  if (!threadsWanted()) return;
  try {
    while (idle.length < n) {
      const worker = spawn();
      worker.unref();
      const gone = () => {
        const i = idle.indexOf(worker);
        if (i >= 0) idle.splice(i, 1);
      };
      worker.once("error", gone);
      worker.once("exit", gone);
      leaving.set(worker, gone);
      idle.push(worker);
    }
  } catch { /* none: startThread() starts one, or says why not */ }
}

/** A thread running `source` with `data` (shared memory in it is shared): an idle one, else a new one. Throws where threads cannot start. */
export function startThread(source: string, data: unknown): Worker {
  const worker = idle.shift() ?? spawn();
  const gone = leaving.get(worker);
  if (gone) worker.off("error", gone).off("exit", gone);
  worker.ref();
  worker.postMessage({ source, data });
  return worker;
}

/** Stop the idle threads (a fetch that warmed one and did not use it). */
export function dropThreads(): void {
  for (const worker of idle.splice(0)) void worker.terminate();
}
