/**
 * Progress like redo's: one line per target as it starts (nested deps indented), one
 * live status line on a TTY, a summary at the end, and one block per failure.
 */
import type { BuildError } from "./errors.ts";

export interface Reporter {
  start(name: string, depth: number, reason: string): void;
  finish(name: string, ok: boolean): void;
  warn(message: string): void;
  info(message: string): void;
  command(name: string, command: string): void;
  failure(error: BuildError): void;
  summary(counts: { built: number; upToDate: number; failed: number }, seconds: number): void;
}

export interface ReporterOptions {
  stream?: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
  verbose?: boolean;
  quiet?: boolean;
  /** Show why each target rebuilds. */
  why?: boolean;
}

export function consoleReporter(options: ReporterOptions = {}): Reporter {
  const out = options.stream ?? process.stderr;
  const tty = Boolean(out.isTTY) && !process.env.CI;
  const running = new Set<string>();
  let statusShown = false;
  const clearStatus = () => {
    if (statusShown) out.write("\r\x1b[K"), (statusShown = false);
  };
  const drawStatus = () => {
    if (!tty || running.size === 0) return;
    const names = [...running];
    const cols = (out as NodeJS.WriteStream).columns || 80;
    let line = `[${names.length} running] ${names.join(", ")}`;
    if (line.length > cols - 1) line = line.slice(0, cols - 2) + "…";
    out.write(`\x1b[2m${line}\x1b[0m`);
    statusShown = true;
  };
  const print = (line: string) => {
    clearStatus();
    out.write(line + "\n");
    drawStatus();
  };
  return {
    start(name, depth, reason) {
      running.add(name);
      if (!options.quiet) print(`crecipe ${" ".repeat(1 + 2 * depth)}${name}${options.why ? `  (${reason})` : ""}`);
      else drawStatus();
    },
    finish(name) {
      running.delete(name);
      clearStatus();
      drawStatus();
    },
    warn(message) {
      print(`crecipe: warning: ${message}`);
    },
    info(message) {
      if (!options.quiet) print(`crecipe: ${message}`);
    },
    command(name, command) {
      if (options.verbose) print(`+ [${name}] ${command}`);
    },
    failure(error) {
      print(formatFailure(error));
    },
    summary(counts, seconds) {
      if (options.quiet && counts.failed === 0) return;
      const parts = [`${counts.built} built`, `${counts.upToDate} up to date`];
      if (counts.failed) parts.push(`${counts.failed} failed`);
      print(`crecipe: ${parts.join(", ")} in ${seconds.toFixed(2)} s`);
    },
  };
}

/** The one block a failing target prints: target, command, exit code, log tail, log path, fix. */
export function formatFailure(error: BuildError): string {
  const lines = [`crecipe: FAILED ${error.target ?? "?"}: ${error.message}`];
  if (error.command) lines.push(`  command:   ${error.command}`);
  if (error.exitCode !== undefined && error.exitCode !== null) lines.push(`  exit code: ${error.exitCode}`);
  if (error.logTail?.length) {
    lines.push(`  last lines of the log:`);
    for (const l of error.logTail) lines.push(`  | ${l}`);
  }
  if (error.logPath) lines.push(`  log:       ${error.logPath}`);
  if (error.fix) lines.push(`  fix:       ${error.fix}`);
  return lines.join("\n");
}
