/**
 * Errors a person can act on. Every error crecipe raises for a user mistake or a failed
 * step is a CrecipeError: it says which target, what failed, and what to do.
 */
export class CrecipeError extends Error {
  /** What to do about it, one line. */
  fix?: string;
  /** The target this error belongs to, when there is one. */
  target?: string;
  constructor(message: string, options: { fix?: string; target?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CrecipeError";
    this.fix = options.fix;
    this.target = options.target;
  }
}

/** A builder failed: carries the command, exit code and log for the one-block report. */
export class BuildError extends CrecipeError {
  command?: string;
  exitCode?: number | null;
  logPath?: string;
  logTail?: string[];
  constructor(
    message: string,
    details: { target: string; command?: string; exitCode?: number | null; logPath?: string; logTail?: string[]; fix?: string; cause?: unknown },
  ) {
    super(message, details);
    this.name = "BuildError";
    Object.assign(this, details);
  }
}

/** A dependency cycle, printed as `a → b → a`. */
export class CycleError extends CrecipeError {
  constructor(readonly cycle: string[]) {
    super(`dependency cycle: ${cycle.join(" → ")}`, {
      fix: "a target cannot need itself, directly or through others: remove one of these needs",
      target: cycle[0],
    });
    this.name = "CycleError";
  }
}

/** The build was interrupted (SIGINT/SIGTERM). */
export class InterruptedError extends CrecipeError {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`);
    this.name = "InterruptedError";
  }
}

/**
 * A process a builder ran exited non-zero. The failure report shows it as "command failed
 * with exit code N", with the command and the log's last lines; `fix` says what to do.
 */
export function exitFailure(exitCode: number | null, fix?: string): Error {
  return Object.assign(new Error(`exit code ${exitCode}`), { exitCode, fix });
}
