/**
 * Helper threads (the packer's, the output hash's, fetch's file hash, gzip's), all started
 * one way. Node takes ~75 ms here to start one (a new isolate bootstrapping Node's
 * internals), so only work on at least THREAD_BYTES uses one, and a target that can tell
 * early that it will want some starts them before it needs them (warmThreads).
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

// A warm thread waits for one message: the source to run and its data.
const BOOT = `require("node:worker_threads").parentPort.once("message", (m) => new Function("require", "workerData", m.source)(require, m.data));`;

/** Threads started before they were asked for (warmThreads), waiting for their work. */
const idle: Worker[] = [];

function spawn(code: string, data: unknown, limits: typeof SMALL_HEAP): Worker {
  const { Worker } = require("node:worker_threads") as typeof import("node:worker_threads");
  return new Worker(code, { eval: true, workerData: data, resourceLimits: limits });
}

/**
 * Start threads (SMALL_HEAP) until `n` wait idle, for a target that can tell it will want
 * them: they start while its dependencies build, and keep no process alive while they wait.
 */
export function warmThreads(n: number): void {
  if (!threadsWanted()) return;
  try {
    while (idle.length < n) {
      const worker = spawn(BOOT, undefined, SMALL_HEAP);
      worker.unref();
      const gone = () => {
        const i = idle.indexOf(worker);
        if (i >= 0) idle.splice(i, 1);
      };
      worker.once("error", gone);
      worker.once("exit", gone);
      idle.push(worker);
    }
  } catch { /* none: startThread() starts one, or says why not */ }
}

/**
 * A thread running `source` with `data` as its workerData (shared memory in it is shared):
 * a warm one when `limits` are SMALL_HEAP and one waits, else a new one. Throws where
 * threads cannot start.
 */
export function startThread(source: string, data: unknown, limits = SMALL_HEAP): Worker {
  const warm = limits === SMALL_HEAP ? idle.shift() : undefined;
  if (!warm) return spawn(`const { workerData } = require("node:worker_threads");\n${source}`, data, limits);
  warm.removeAllListeners();
  warm.ref();
  warm.postMessage({ source, data });
  return warm;
}

/** Stop the threads warmed and not used. */
export function dropThreads(): void {
  for (const worker of idle.splice(0)) void worker.terminate();
}
