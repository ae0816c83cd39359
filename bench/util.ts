/** Benchmark plumbing: time commands the same way, print one table with ratios. */
import { spawnSync } from "node:child_process";

export interface Row {
  case: string;
  crecipe: number;
  peer: string;
  peerSeconds: number;
  goal?: string;
}

/** Median wall time of `runs` runs; `before` runs untimed before each. */
export function time(command: string[], options: { cwd?: string; runs?: number; before?: (i: number) => void; env?: Record<string, string> } = {}): number {
  const samples: number[] = [];
  for (let i = 0; i < (options.runs ?? 7); i++) {
    options.before?.(i);
    const start = performance.now();
    const r = spawnSync(command[0], command.slice(1), { cwd: options.cwd, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...options.env } });
    const seconds = (performance.now() - start) / 1000;
    if (r.status !== 0) throw new Error(`${command.join(" ")} failed (${r.status}): ${r.stderr}`);
    samples.push(seconds);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

export function table(rows: Row[]): string {
  const head = ["case", "crecipe", "peer", "peer time", "ratio", "goal"];
  const body = rows.map((r) => [
    r.case,
    `${r.crecipe.toFixed(3)} s`,
    r.peer,
    `${r.peerSeconds.toFixed(3)} s`,
    `${(r.crecipe / r.peerSeconds).toFixed(2)}×`,
    r.goal ?? "",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |";
  return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...body.map(line)].join("\n");
}
