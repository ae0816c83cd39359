/**
 * What a build does, as events: for `--json` (one JSON object per line), `--trace` (a
 * Chrome trace to open in Perfetto) and `build({ onEvent })`. Every event carries
 * `v: 1` (this schema's version), `event` and `t`, milliseconds since the run started;
 * the first one, `run`, gives the wall-clock start once.
 *
 * Every target the run looks at is `queued` once and ends with exactly one of `upToDate`,
 * `built` or `failed`. In between, a target that builds is `started` on a job slot, may
 * leave it while it waits for a dependency (`waiting`, then `resumed`, perhaps on another
 * slot) and runs `command`s. With a shared cache, a target is `started` while it is
 * fetched (its `built` then names the cache) and, when the cache does not have it after
 * all, `started` again for its build. The last event is `summary`. Field names are stable; new
 * fields may be added, and a change to an existing one bumps `v`.
 */

import * as fs from "node:fs";
import { writeFileAtomic } from "./state.ts";

/** The schema version every event carries. */
export const EVENTS_VERSION = 1;

/** The fields every event has. */
export interface EventBase {
  /** The schema version: 1. */
  v: 1;
  /** Milliseconds since the run started. */
  t: number;
}

/** What a failed target's event says: the block a person sees, in fields and as printed. */
export interface FailureFields {
  /** What failed, in one line. */
  message: string;
  /** The command that failed, when one did. */
  command?: string;
  /** Its exit code. */
  exitCode?: number;
  /** The signal that killed it. */
  signal?: string;
  /** What to do about it. */
  fix?: string;
  /** The target's log file (relative to the current directory when under it). */
  log?: string;
  /** The log's last lines. */
  logTail?: string[];
  /** The target whose failure this is, when it is not the target itself (a dependency's). */
  because?: string;
  /** The block as printed. */
  text: string;
}

/** The critical path: the chain of targets, each waiting on the one before, that ended last. */
export interface CriticalPath {
  /** The targets' own build time along the chain (time waiting for others left out). */
  ms: number;
  /** The chain, first to last. */
  targets: string[];
  /** The chain's slowest target and its own build time. */
  slowest: { target: string; ms: number };
}

/** One event of a build. */
export type BuildEvent =
  | EventBase & { event: "run"; start: string; pid: number; jobs: number; runtime: "node" | "deno" }
  | EventBase & { event: "queued"; target: string; parent?: string }
  | EventBase & { event: "upToDate"; target: string; reason: string }
  | EventBase & { event: "started"; target: string; reason: string; slot: number }
  | EventBase & { event: "waiting"; target: string; for: string }
  | EventBase & { event: "resumed"; target: string; slot: number }
  | EventBase & { event: "command"; target: string; command: string }
  | EventBase & { event: "built"; target: string; ms: number; stamp: string; cutoff: boolean; bytes?: number; deps: string[]; cache?: string }
  | EventBase & { event: "failed"; target: string; error: FailureFields }
  | EventBase & {
    event: "summary";
    built: number;
    /** Of those, taken from the shared cache instead of built. */
    fetched: number;
    upToDate: number;
    failed: number;
    cutoff: number;
    seconds: number;
    rebuilt: { target: string; reason: string }[];
    criticalPath?: CriticalPath;
  };

/** Omit that keeps a union a union (Omit of a union merges its members). */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Something that takes events (an NDJSON writer, a trace recorder, a script's callback). */
export type EventSink = (event: BuildEvent) => void;

/** Sends each event to every sink. */
export function fanOut(sinks: (EventSink | undefined)[]): EventSink | undefined {
  const live = sinks.filter((s): s is EventSink => s !== undefined);
  if (live.length <= 1) return live[0];
  return (event) => {
    for (const sink of live) sink(event);
  };
}

/**
 * The critical path of a run from its targets' times and dependencies: from the target
 * that finished last, back through the dependency that finished last, and so on.
 */
export function criticalPath(done: Map<string, { end: number; ms: number; deps: string[] }>): CriticalPath | undefined {
  let last: string | undefined;
  for (const [name, d] of done) if (last === undefined || d.end > done.get(last)!.end) last = name;
  if (last === undefined) return undefined;
  const chain: string[] = [];
  const seen = new Set<string>();
  for (let at: string | undefined = last; at !== undefined && !seen.has(at); ) {
    seen.add(at);
    chain.unshift(at);
    let next: string | undefined;
    for (const dep of done.get(at)!.deps) {
      const d = done.get(dep);
      if (d && (next === undefined || d.end > done.get(next)!.end)) next = dep;
    }
    at = next;
  }
  let ms = 0;
  let slowest = { target: chain[0], ms: -1 };
  for (const name of chain) {
    const own = done.get(name)!.ms;
    ms += own;
    if (own > slowest.ms) slowest = { target: name, ms: own };
  }
  return { ms, targets: chain, slowest };
}

/** A Chrome trace event (the fields Perfetto and chrome://tracing read). */
interface TraceEvent {
  name: string;
  ph: "X" | "M" | "i";
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  cat?: string;
  s?: "g";
  args?: Record<string, unknown>;
}

/**
 * Records events and makes a Chrome trace of them: one lane per job slot, a slice per
 * stretch of a target on a slot (a target that waits for a dependency leaves its slot),
 * the commands it ran nested inside (each until the next command or the stretch's end),
 * and the critical path's slices marked (`args.critical`, and a lane of their own).
 */
export class TraceRecorder {
  private readonly events: TraceEvent[] = [];
  private readonly open = new Map<string, { slot: number; from: number; command?: { name: string; from: number } }>();
  private readonly slices = new Map<string, TraceEvent[]>();
  private critical: CriticalPath | undefined;
  private readonly slots = new Set<number>();

  readonly sink: EventSink = (event) => {
    switch (event.event) {
      case "started":
      case "resumed":
        this.open.set(event.target, { slot: event.slot, from: event.t });
        this.slots.add(event.slot);
        break;
      case "command": {
        const o = this.open.get(event.target);
        if (!o) break;
        this.endCommand(event.target, o, event.t);
        o.command = { name: event.command, from: event.t };
        break;
      }
      case "waiting":
        this.close(event.target, event.t, { waitingFor: event.for });
        break;
      case "built":
        this.close(event.target, event.t, { ms: event.ms, cutoff: event.cutoff });
        break;
      case "failed":
        this.close(event.target, event.t, { failed: event.error.message });
        break;
      case "upToDate":
        this.events.push({ name: event.target, ph: "i", s: "g", ts: us(event.t), pid: 1, tid: 0, cat: "upToDate", args: { reason: event.reason } });
        break;
      case "summary":
        this.critical = event.criticalPath;
        break;
    }
  };

  private endCommand(target: string, o: { slot: number; command?: { name: string; from: number } }, t: number): void {
    if (!o.command) return;
    this.events.push({ name: o.command.name.slice(0, 200), ph: "X", ts: us(o.command.from), dur: us(t - o.command.from), pid: 1, tid: o.slot + 1, cat: "command", args: { target } });
    o.command = undefined;
  }

  private close(target: string, t: number, args: Record<string, unknown>): void {
    const o = this.open.get(target);
    if (!o) return;
    this.open.delete(target);
    this.endCommand(target, o, t);
    const slice: TraceEvent = { name: target, ph: "X", ts: us(o.from), dur: us(t - o.from), pid: 1, tid: o.slot + 1, cat: "target", args };
    this.events.push(slice);
    const list = this.slices.get(target) ?? [];
    list.push(slice);
    this.slices.set(target, list);
  }

  /** The trace as JSON (the object form, with `traceEvents`). */
  toJSON(): { traceEvents: TraceEvent[]; displayTimeUnit: "ms" } {
    const meta: TraceEvent[] = [{ name: "process_name", ph: "M", ts: 0, pid: 1, tid: 0, args: { name: "crecipe" } }];
    meta.push({ name: "thread_name", ph: "M", ts: 0, pid: 1, tid: 0, args: { name: "up to date" } });
    for (const slot of [...this.slots].sort((a, b) => a - b)) meta.push({ name: "thread_name", ph: "M", ts: 0, pid: 1, tid: slot + 1, args: { name: `job slot ${slot + 1}` } });
    const critical: TraceEvent[] = [];
    if (this.critical) {
      const lane = Math.max(0, ...this.slots) + 2;
      meta.push({ name: "thread_name", ph: "M", ts: 0, pid: 1, tid: lane, args: { name: `critical path (${(this.critical.ms / 1000).toFixed(2)} s)` } });
      for (const target of this.critical.targets) {
        for (const slice of this.slices.get(target) ?? []) {
          slice.args = { ...slice.args, critical: true };
          critical.push({ ...slice, tid: lane, cat: "critical" });
        }
      }
    }
    return { traceEvents: [...meta, ...this.events, ...critical], displayTimeUnit: "ms" };
  }
}

/** Milliseconds to the trace's microseconds, whole. */
function us(ms: number): number {
  return Math.round(ms * 1000);
}

/**
 * An NDJSON writer: `fd:N` writes to that file descriptor (left open), anything else is a
 * file, created or truncated, written as the run goes (it can be followed with tail -f).
 */
export function jsonLines(where: string): { sink: EventSink; close(): void } {
  const fdMatch = /^fd:(\d+)$/.exec(where);
  const fd = fdMatch ? Number(fdMatch[1]) : fs.openSync(where, "w");
  // Lines are written in batches (a no-op of 1000 targets has 2000 events): at most 50 ms
  // or 64 KB late, and at once for the events a watcher waits for (a target started or
  // failed, the summary).
  let pending = "";
  let since = performance.now();
  const flush = () => {
    if (pending) fs.writeSync(fd, pending);
    pending = "";
    since = performance.now();
  };
  return {
    sink: (event) => {
      pending += JSON.stringify(event) + "\n";
      if (event.event === "started" || event.event === "failed" || event.event === "summary" || pending.length > 65536 || performance.now() - since > 50) flush();
    },
    close: () => {
      flush();
      if (!fdMatch) fs.closeSync(fd);
    },
  };
}

/** Write a recorded trace to `file` (through a temp file: a trace is whole or absent). */
export function writeTrace(file: string, trace: TraceRecorder): void {
  writeFileAtomic(file, JSON.stringify(trace.toJSON()));
}
