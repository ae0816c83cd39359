/**
 * Errors a person can act on. Every error crecipe raises for a user mistake or a failed
 * step is a CrecipeError: it says which target, what failed, and what to do.
 */
import * as os from "node:os";
import { thrownAt } from "./site.ts";

/**
 * The base of crecipe's errors: what failed (the message), which target, and what to do.
 *
 * ```ts
 * throw new CrecipeError("no kernel to boot", { fix: "sudo apt-get install linux-image-amd64" });
 * ```
 */
export class CrecipeError extends Error {
  /** What to do about it, one line. */
  fix?: string;
  /** The target this error belongs to, when there is one. */
  target?: string;
  /** The place in a recipe it came from ("r.ts:3:7"), when the message does not say it. */
  where?: string;
  /** `message` says what failed; `options.fix` what to do. */
  constructor(message: string, options: { fix?: string; target?: string; where?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CrecipeError";
    this.fix = options.fix;
    this.target = options.target;
    this.where = options.where;
  }
}

/** A builder failed: carries the command, how it ended and the log for the one-block report. */
export class BuildError extends CrecipeError {
  /** The command that failed, when a command did. */
  command?: string;
  /** Its exit code. */
  exitCode?: number | null;
  /** The signal that killed the command ("SIGKILL"), when one did. */
  signal?: string;
  /** The target's log. */
  logPath?: string;
  /** The log's last lines. */
  logTail?: string[];
  /** `details` carries the target and what the report shows. */
  constructor(
    message: string,
    details: {
      target: string;
      where?: string;
      command?: string;
      exitCode?: number | null;
      signal?: string;
      logPath?: string;
      logTail?: string[];
      fix?: string;
      cause?: unknown;
    },
  ) {
    super(message, details);
    this.name = "BuildError";
    this.command = details.command;
    this.exitCode = details.exitCode;
    this.signal = details.signal;
    this.logPath = details.logPath;
    this.logTail = details.logTail;
  }
}

/** A dependency cycle, printed as `a → b → a`. */
export class CycleError extends CrecipeError {
  /** `cycle`: the targets in order, the first again at the end. */
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
  /** `signal`: the signal's name. */
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`);
    this.name = "InterruptedError";
  }
}

/**
 * A process a builder ran exited non-zero or was killed: how it ended, as fields. The
 * failure report shows it as "command failed with exit code N" (or "command killed by
 * SIGKILL"), with the command and the log's last lines; `fix` says what to do. A step that
 * knows better what failed says so in `message` ("mmdebstrap failed with exit code 2").
 *
 * ```ts
 * if (result.exitCode !== 0) throw new CommandError(result.exitCode, { fix: "see the log above" });
 * ```
 */
export class CommandError extends CrecipeError {
  /** The exit code, or null when the process was killed or gave none. */
  exitCode: number | null;
  /** The signal that killed it ("SIGKILL"), when one did. */
  signal?: string;
  /** The command, when it is not the builder's last one. */
  command?: string;
  /** `exitCode` as the process ended; `options.message` overrides "command failed with exit code N". */
  constructor(
    exitCode: number | null,
    options: { message?: string; fix?: string; target?: string; signal?: string; command?: string } = {},
  ) {
    super(options.message ?? commandOutcome(exitCode, options.signal), { fix: options.fix, target: options.target });
    this.name = "CommandError";
    this.exitCode = exitCode;
    this.signal = options.signal;
    this.command = options.command;
  }
}

/** How a command ended, as the report says it. */
export function commandOutcome(exitCode: number | null | undefined, signal?: string | null): string {
  if (signal) return `command killed by ${signal}`;
  if (typeof exitCode === "number") return `command failed with exit code ${exitCode}`;
  return "command failed without an exit code";
}

/** How a process ended, as a thrown error tells it. */
interface ProcessEnd {
  exitCode?: number;
  signal?: string;
  command?: string;
}

/**
 * How a process ended, when `error` is one that says: crecipe's CommandError, a BuildError
 * described before, or zx's ProcessOutput (read by its shape: the engine does not load zx).
 */
function processEnd(error: unknown): ProcessEnd | undefined {
  const number = (v: unknown) => (typeof v === "number" ? v : undefined);
  const text = (v: unknown) => (typeof v === "string" ? v : undefined);
  if (error instanceof CommandError) return { exitCode: number(error.exitCode), signal: error.signal, command: error.command };
  if (error instanceof BuildError) {
    const exitCode = number(error.exitCode);
    return exitCode !== undefined || error.signal !== undefined ? { exitCode, signal: error.signal, command: error.command } : undefined;
  }
  if (error instanceof CrecipeError) return undefined;
  const zx = error as { exitCode?: unknown; signal?: unknown } | undefined;
  const exitCode = number(zx?.exitCode);
  const signal = text(zx?.signal);
  return exitCode !== undefined || signal !== undefined ? { exitCode, signal } : undefined;
}

/**
 * What a builder's failure says, by what it threw: a command that failed or was killed
 * (zx's ProcessOutput, a CommandError) says how it ended; a CrecipeError says it already;
 * a system error names the file; an exception in the builder's code (a TypeError) gives
 * the recipe line it came from. `lastCommand` is the builder's last command, if any.
 */
export function describeFailure(error: unknown, lastCommand: string | undefined): {
  message: string;
  command?: string;
  exitCode?: number;
  signal?: string;
  fix?: string;
  where?: string;
} {
  const ended = processEnd(error);
  const own = error instanceof CrecipeError ? error : undefined;
  if (ended) {
    return {
      message: own ? own.message : commandOutcome(ended.exitCode, ended.signal),
      command: ended.command ?? lastCommand,
      exitCode: ended.exitCode,
      signal: ended.signal,
      fix: own?.fix ?? (ended.signal === "SIGKILL" ? "it was killed from outside crecipe (by the out-of-memory killer? see dmesg)" : undefined),
    };
  }
  if (own) return { message: own.message.split("\n")[0], command: own instanceof BuildError ? own.command : undefined, fix: own.fix };
  const system = describeSystemError(error);
  if (system) return system;
  return { message: String((error as { message?: unknown } | undefined)?.message ?? error).split("\n")[0], where: thrownAt(error) };
}

/**
 * The out dir cannot be written: it is read-only, or another user's. Nothing a recipe can
 * fix: it names the out dir, the file, and the target whose file it is when there is one.
 */
export class OutDirError extends CrecipeError {
  constructor(readonly outDir: string, readonly path: string, readonly code: string, options: { target?: string; cause?: unknown } = {}) {
    const readOnly = code === "EROFS";
    super(`cannot write to the out dir ${outDir}: ${readOnly ? "it is on a read-only file system" : "permission denied"} (${path})`, {
      fix: readOnly
        ? "choose another out dir with -o DIR"
        : `choose another out dir with -o DIR, or fix its permissions so that ${whoAmI()} can write in it`,
      target: options.target,
      cause: options.cause,
    });
    this.name = "OutDirError";
  }
}

/** Error codes that say "you may not write here". */
export const DENIED = new Set(["EACCES", "EPERM", "EROFS"]);

/** What Node's fs errors carry: errno, syscall, path, and for a rename or link its destination. */
export type SystemError = NodeJS.ErrnoException & { dest?: string };

/** A Node system error (an errno), or undefined. */
export function systemError(error: unknown): SystemError | undefined {
  const e = error as SystemError | undefined;
  return e instanceof Error && typeof e.code === "string" && typeof e.syscall === "string" ? e : undefined;
}

/**
 * A system error on a host file as one readable sentence and a fix: "permission denied:
 * cannot open /etc/shadow". Undefined for anything else.
 */
export function describeSystemError(error: unknown): { message: string; fix?: string } | undefined {
  const e = systemError(error);
  if (!e) return undefined;
  const what = `${e.syscall} ${e.path ?? ""}${e.dest ? ` → ${e.dest}` : ""}`.trim();
  switch (e.code) {
    case "EACCES":
    case "EPERM":
      return {
        message: `permission denied: cannot ${what}`,
        fix: `${whoAmI()} may not ${e.syscall} ${e.path ?? "it"}: change its permissions, or run crecipe as a user who may`,
      };
    case "EROFS":
      return { message: `read-only file system: cannot ${what}` };
    case "ENOENT":
      return { message: `no such file or directory: cannot ${what}`, fix: `check the path ${e.path ?? ""}`.trim() };
    case "ENOSPC":
      return { message: `no space left on the device: cannot ${what}`, fix: "free some space, or choose an out dir on another file system (-o DIR)" };
    case "ENAMETOOLONG": {
      const p = e.path ?? "";
      const shown = p.length > 120 ? `${p.slice(0, 60)}…${p.slice(-40)} (${Buffer.byteLength(p)} bytes)` : p;
      return {
        message: `name too long: cannot ${e.syscall} ${shown}`,
        fix: "Linux takes paths up to 4095 bytes and names up to 255: use a shorter path (a symlink to a directory near it works)",
      };
    }
    default:
      return { message: `${e.code}: cannot ${what}` };
  }
}

/** "user alice" (or "uid 1001" when the user has no name), for fixes about permissions. */
function whoAmI(): string {
  try {
    return `user ${os.userInfo().username}`;
  } catch {
    return `uid ${process.getuid?.() ?? "?"}`;
  }
}
