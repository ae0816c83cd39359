/**
 * Dependency cycles across processes. Inside one process the engine sees a cycle as it
 * happens (cycles.ts); across two it shows up only as locks: P1 builds x and x needs y,
 * P2 builds y and y needs x, and each waits for the other's lock. So a process waiting for
 * a lock publishes what it waits for and the waits between its own targets, in
 * `lock/HOLDER.TARGET.wait` (HOLDER as in holder.ts); a waiter follows the lock's holder →
 * what that holder's target waits for → its holder …, and a chain that comes back to a
 * target this process holds is a CycleError, not a wait forever. When both processes find
 * it at once both fail, which is fine: neither hangs.
 *
 * Waits are followed per target, not per process: a process that holds a and waits for b
 * while another holds b and waits for a (`crecipe r.ts a b` beside `crecipe r.ts b a`) is no
 * cycle, unless a's builder itself waits for b.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CycleError } from "./errors.ts";
import { holderId, self } from "./holder.ts";
import { fitName } from "./io.ts";
import { lockHolder } from "./lock.ts";
import { writeFileAtomic } from "./state.ts";

/** `from` waits for `to`, inside one process. */
export type Edge = [from: string, to: string];

/** What one process waits for, read from its wait records. */
interface Waits {
  wants: Set<string>;
  edges: Edge[];
}

export interface CycleWatch {
  /** Publish what we wait for, then follow the chain; throws CycleError when it comes back. */
  poll(): void;
  /** The wait is over: remove our record. */
  end(): void;
}

/**
 * Watch one lock wait: `target` is the target whose lock we wait for, `edges` this
 * process's waits between targets now, `lockOf` a target's lock file.
 */
export function watchForCycles(target: string, options: {
  lockOf: (name: string) => string;
  edges: () => Edge[];
  signal?: AbortSignal;
}): CycleWatch {
  const lockDir = path.dirname(options.lockOf(target));
  const me = holderId(self);
  // The record names the target; the file name only has to be unique and start with the holder.
  const file = path.join(lockDir, `${me}.${fitName(target, 255 - me.length - ".x.wait".length)}.wait`);
  let written: string | undefined;
  const end = () => {
    options.signal?.removeEventListener("abort", end);
    if (written !== undefined) fs.rmSync(file, { force: true });
    written = undefined;
  };
  // Ctrl-C exits from the engine's signal handler, past every finally: abort is heard first.
  options.signal?.addEventListener("abort", end);
  return {
    poll() {
      const mine = options.edges();
      const text = JSON.stringify({ wants: target, edges: mine }) + "\n";
      if (text !== written) writeFileAtomic(file, text), (written = text);
      const cycle = findCycle(target, mine, lockDir, options.lockOf);
      if (cycle) throw new CycleError(cycle);
    },
    end,
  };
}

/** Follow holder → waits → holder from the lock we want; the cycle as target names, or undefined. */
function findCycle(wanted: string, mine: Edge[], lockDir: string, lockOf: (name: string) => string): string[] | undefined {
  const me = holderId(self);
  const queue = [{ at: wanted, chain: [wanted] }];
  const seen = new Set<string>();
  while (queue.length) {
    const { at, chain } = queue.shift()!;
    if (seen.has(at)) continue;
    seen.add(at);
    const holder = lockHolder(lockOf(at)); // none when free, debris or dead: nothing to follow
    if (!holder) continue;
    const id = holderId(holder);
    if (id === me) {
      // Back here: a cycle if the target we hold waits, in this process, for the one we want.
      const back = at === wanted ? undefined : route(mine, at, wanted);
      if (back) return [...chain, ...back.slice(1)];
      continue;
    }
    const theirs = readWaits(lockDir, id);
    for (const next of theirs.wants) {
      const via = route(theirs.edges, at, next);
      if (via) queue.push({ at: next, chain: [...chain, ...via.slice(1)] });
    }
  }
  return undefined;
}

/** The shortest path from → … → to along `edges`, or undefined. */
function route(edges: Edge[], from: string, to: string): string[] | undefined {
  const cameFrom = new Map<string, string>([[from, from]]);
  const queue = [from];
  while (queue.length) {
    const at = queue.shift()!;
    if (at === to) {
      const path = [to];
      while (path[0] !== from) path.unshift(cameFrom.get(path[0])!);
      return path;
    }
    for (const [a, b] of edges) {
      if (a === at && !cameFrom.has(b)) cameFrom.set(b, a), queue.push(b);
    }
  }
  return undefined;
}

function readWaits(lockDir: string, id: string): Waits {
  const waits: Waits = { wants: new Set(), edges: [] };
  let names: string[] = [];
  try {
    names = fs.readdirSync(lockDir).filter((n) => n.startsWith(`${id}.`) && n.endsWith(".wait"));
  } catch {
    return waits;
  }
  for (const name of names) {
    try {
      const record = JSON.parse(fs.readFileSync(path.join(lockDir, name), "utf8"));
      waits.wants.add(String(record.wants));
      for (const edge of record.edges) waits.edges.push([String(edge[0]), String(edge[1])]);
    } catch { /* ended meanwhile */ }
  }
  return waits;
}
