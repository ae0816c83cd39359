/**
 * Dependency cycles, found as they happen (redo's cycles.py does the same with its
 * locks): a → b is recorded while a's builder waits for b; an edge that closes a loop
 * is a cycle, reported in the order the targets were first asked for.
 */
import { CycleError } from "./errors.ts";

export class WaitGraph {
  private readonly waits = new Map<string, Set<string>>();

  /** Record that `from` waits for `to`; throws CycleError if `to` already waits for `from`. `order` ranks names for the report. */
  add(from: string, to: string, order: (name: string) => number): void {
    const back = this.pathBetween(to, from, new Set());
    if (back) {
      const loop = [from, ...back].slice(0, -1);
      const first = loop.reduce((best, name, i) => (order(name) < order(loop[best]) ? i : best), 0);
      const rotated = [...loop.slice(first), ...loop.slice(0, first)];
      throw new CycleError([...rotated, rotated[0]]);
    }
    let set = this.waits.get(from);
    if (!set) this.waits.set(from, (set = new Set()));
    set.add(to);
  }

  remove(from: string, to: string): void {
    this.waits.get(from)?.delete(to);
  }

  /** Every wait recorded now, for other processes to follow (waits.ts). */
  edges(): [string, string][] {
    return [...this.waits].flatMap(([from, tos]) => [...tos].map((to): [string, string] => [from, to]));
  }

  private pathBetween(start: string, goal: string, seen: Set<string>): string[] | undefined {
    if (start === goal) return [start];
    if (seen.has(start)) return undefined;
    seen.add(start);
    for (const next of this.waits.get(start) ?? []) {
      const rest = this.pathBetween(next, goal, seen);
      if (rest) return [start, ...rest];
    }
    return undefined;
  }
}
