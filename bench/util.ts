/** Benchmark plumbing: time commands the same way, print one table with ratios. */
import { spawnSync } from "node:child_process";

export interface Row {
  case: string;
  crecipe: number;
  peer: string;
  peerSeconds: number;
  goal?: string;
  /** What the figures are in (default seconds). */
  unit?: "s" | "MB" | "kB";
}

export interface Timing {
  seconds: number;
  /** Peak resident memory of the command (MB), from GNU time. */
  rssMB: number;
}

/** Median wall time (and median peak RSS) of `runs` runs; `before` runs untimed before each. */
export function measure(command: string[], options: { cwd?: string; runs?: number; before?: (i: number) => void; env?: Record<string, string> } = {}): Timing {
  const samples: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < (options.runs ?? 7); i++) {
    options.before?.(i);
    const start = performance.now();
    const r = spawnSync("/usr/bin/time", ["-f", "%M", ...command], { cwd: options.cwd, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...options.env } });
    const seconds = (performance.now() - start) / 1000;
    const err = r.stderr.toString();
    if (r.status !== 0) throw new Error(`${command.join(" ")} failed (${r.status}): ${err}`);
    samples.push(seconds);
    rss.push(Number(err.trim().split("\n").at(-1)) / 1024);
    if (process.env.BENCH_VERBOSE) process.stderr.write(`  ${seconds.toFixed(3)} s  ${command.slice(1, 6).join(" ")}\n`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { seconds: median(samples), rssMB: median(rss) };
}

/** Median wall time of `runs` runs; `before` runs untimed before each. */
export function time(command: string[], options: { cwd?: string; runs?: number; before?: (i: number) => void; env?: Record<string, string> } = {}): number {
  return measure(command, options).seconds;
}

/**
 * Median wall times (and peak memory) of commands run in alternation (a, b, c, a, b, c, …),
 * for costs a few percent apart: measured one after the other, drift on a noisy machine
 * would swamp them. `before(i, k)` runs untimed before the i-th run of command k.
 */
export function alternated(commands: string[][], options: { cwd?: string; runs?: number; before?: (i: number, k: number) => void } = {}): Timing[] {
  const samples: Timing[][] = commands.map(() => []);
  for (let i = 0; i < (options.runs ?? 11); i++) {
    commands.forEach((command, k) => {
      options.before?.(i, k);
      samples[k].push(measure(command, { cwd: options.cwd, runs: 1 }));
    });
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  return samples.map((runs) => ({ seconds: median(runs.map((r) => r.seconds)), rssMB: median(runs.map((r) => r.rssMB)) }));
}

/** alternated() of two commands' times; `before(n)` runs before the n-th run of either. */
export function paired(a: string[], b: string[], options: { cwd?: string; runs?: number; before?: (i: number) => void } = {}): [number, number] {
  const [x, y] = alternated([a, b], { ...options, before: options.before && ((i, k) => options.before!(2 * i + k)) });
  return [x.seconds, y.seconds];
}

export function table(rows: Row[]): string {
  const head = ["case", "crecipe", "peer", "peer figure", "ratio", "goal"];
  // Megabytes: three figures below 100 (0.109 MB changed), five above (104.89 MB; memory: 121 MB).
  const megabytes = (value: number) => (value >= 100 ? value.toPrecision(5).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "") : value.toPrecision(3));
  const show = (value: number, unit: Row["unit"]) => (unit === "MB" ? `${megabytes(value)} MB` : unit === "kB" ? `${value.toFixed(1)} kB` : `${value.toFixed(3)} s`);
  const body = rows.map((r) => [
    r.case,
    show(r.crecipe, r.unit),
    r.peer,
    show(r.peerSeconds, r.unit),
    `${(r.crecipe / r.peerSeconds).toFixed(2)}×`,
    r.goal ?? "",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |";
  return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...body.map(line)].join("\n");
}
