/**
 * Progress like redo's: one line per target as it starts (nested deps indented), one
 * live status line on a TTY, a summary at the end, and one block per failure.
 */
import { BuildError, CrecipeError, describeSystemError, OutDirError } from "./errors.ts";

export interface Reporter {
  start(name: string, depth: number, reason: string): void;
  finish(name: string, ok: boolean): void;
  warn(message: string): void;
  info(message: string): void;
  command(name: string, command: string): void;
  failure(error: BuildError): void;
  summary(counts: { built: number; upToDate: number; failed: number; cutoff?: number; fetched?: number }, seconds: number): void;
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
      const parts = [`${counts.built} built`, ...(counts.fetched ? [`${counts.fetched} from the cache`] : []), `${counts.upToDate} up to date`];
      if (counts.cutoff) parts.push(`${counts.cutoff} cut off early`);
      if (counts.failed) parts.push(`${counts.failed} failed`);
      print(`crecipe: ${parts.join(", ")} in ${seconds.toFixed(2)} s`);
    },
  };
}

/**
 * The one block a failing target prints: target, command, how it ended, log tail, log
 * path, fix. An out dir that cannot be written prints as its target's failure.
 */
export function formatFailure(error: BuildError | OutDirError): string {
  const lines = [`crecipe: FAILED ${error.target ?? "?"}: ${error.message}`];
  const built = error instanceof BuildError ? error : undefined;
  if (error.where) lines.push(`  at:        ${error.where}`);
  if (built?.command) lines.push(`  command:   ${built.command}`);
  if (typeof built?.exitCode === "number") lines.push(`  exit code: ${built.exitCode}`);
  if (built?.logTail?.length) {
    lines.push(`  last lines of the log:`);
    for (const l of built.logTail) lines.push(`  | ${l}`);
  }
  if (built?.logPath) lines.push(`  log:       ${built.logPath}`);
  if (error.fix) lines.push(`  fix:       ${error.fix}`);
  return lines.join("\n");
}

/**
 * Any error as the one block the CLI prints: a failed target as formatFailure does it;
 * another CrecipeError as its message, its place in a recipe and its fix; anything else
 * (a bug in crecipe) as its message and how to see more. A stack only when `verbose`.
 */
export function formatError(error: unknown, verbose = false): string {
  let text: string;
  if (error instanceof BuildError || (error instanceof OutDirError && error.target)) text = formatFailure(error);
  else if (error instanceof CrecipeError) {
    text = `crecipe: error: ${error.message}`;
    if (error.where) text += `\n  at:  ${error.where}`;
    if (error.fix) text += `\n  fix: ${error.fix}`;
  } else if (describeSystemError(error)) {
    const system = describeSystemError(error)!;
    text = `crecipe: error: ${system.message}${system.fix ? `\n  fix: ${system.fix}` : ""}`;
  } else {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    text = `crecipe: error: ${message}`;
    if (!verbose) text += `\n  fix: this looks like a bug in crecipe: run again with -v for the stack, and report it`;
  }
  if (verbose) {
    for (let e: unknown = error; e instanceof Error; e = e.cause) {
      if (e.stack) text += `\n${e === error ? "" : "caused by: "}${e.stack}`;
    }
  }
  return text;
}
