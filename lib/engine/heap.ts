/**
 * Giving memory back after a step that made much garbage.
 *
 * V8 keeps its heap as large as it grew until its next full collection, which a build
 * that goes on to pack a tree it just walked may not reach soon: the walk of 100 000
 * files leaves ~45 MB of heap of which ~10 MB is live, beside the packing threads' own.
 * A step that knows it made that much asks for one collection (~10 ms) where it ends.
 */
import * as v8 from "node:v8";
import * as vm from "node:vm";

let gc: (() => void) | null | undefined;

/** One full collection now, where the runtime allows it (Node); else nothing. */
export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      // The flag exposes `gc` to contexts made after it is set, not to this one.
      v8.setFlagsFromString("--expose-gc");
      const found = vm.runInNewContext("gc");
      gc = typeof found === "function" ? found : null;
    } catch {
      gc = null;
    }
  }
  gc?.();
}
