/**
 * What a builder gets: where to write its output, and how to depend on other targets
 * and host files. Everything it reads through the context becomes a dependency.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Node } from "./node.ts";

/** A built target as builders and scripts see it. */
export interface Result<T = unknown> {
  name: string;
  /** Absolute path of the output in the out dir, or undefined for a value-only target. */
  path: string | undefined;
  /** What the builder returned (JSON), or null. */
  value: T;
  /** Content hash of the output: equal stamps mean equal outputs. */
  stamp: string;
  /** Whether this run built it (false: it was up to date). */
  built: boolean;
}

export interface BuildContext {
  /** The target's name. */
  readonly name: string;
  /** Where the output goes: create a file or a directory here (or nothing). Renamed into place on success. */
  readonly out: string;
  /** A scratch directory, removed after the build. */
  readonly tmp: string;
  /** The out dir (absolute). */
  readonly outDir: string;
  /** The final output path, for messages only: write to `out`. */
  readonly finalPath: string;
  /** Aborted on Ctrl-C or when the build stops. */
  readonly signal: AbortSignal;
  readonly verbose: boolean;
  /** Build another target (if needed) and depend on it; resolves to its output path. */
  need(node: Node): Promise<string>;
  /** Build several targets at once; resolves to their output paths. */
  needAll(nodes: readonly Node[]): Promise<string[]>;
  /** Like need(), with the whole result (value, stamp). */
  result<T>(node: Node<T>): Promise<Result<T>>;
  /** Depend on host files or directories: a change of content rebuilds this target. */
  dependOn(...paths: string[]): void;
  /** Read a host file and depend on it. */
  read(path: string): Promise<Buffer>;
  /** Write a line to this target's log. */
  log(...args: unknown[]): void;
  /** Remember the command being run, for the failure report (the `$` wrapper does this). */
  noteCommand(command: string): void;
  /**
   * The sha256 hex of the file written at `out`, when the builder computed it while
   * writing (archives do): the engine then does not read a large output again.
   */
  trustOutputHash(sha256: string): void;
  /** Called by process helpers so children are killed on Ctrl-C. */
  trackChild(pid: number): () => void;
}

const storage = new AsyncLocalStorage<BuildContext>();

/** The context of the builder running now, if any (helpers use it to log and to record deps). */
export function currentContext(): BuildContext | undefined {
  return storage.getStore();
}

export function runInContext<T>(ctx: BuildContext, fn: () => T): T {
  return storage.run(ctx, fn);
}
