/**
 * The engine's shared types, in one file so its modules depend on each other one way
 * (as Deno std's `_types.ts` does): a node, what a builder gets, what a build returns.
 */

import type { SourceRef } from "./sources.ts";

/** Marks target nodes so hashing and `isNode` can recognise them. */
export const NODE: unique symbol = Symbol.for("crecipe.node") as never;

/**
 * What builds a target: it writes the output at `ctx.out` (or returns a value), and
 * reaches other targets and host files through `ctx`, which records them as dependencies.
 */
export type Builder<T = unknown> = (ctx: BuildContext) => Promise<T> | T;

/** How `target()` declares a target besides its name and builder. */
export interface TargetOptions {
  /** A kind shown in listings ("file", "fs", "layer", …). */
  kind?: string;
  /** Inputs that define the target besides its builder's text (hashed, JSON-like). */
  options?: unknown;
  /** Kept by `--clean` (slow downloads and installs, like the cookbook's clean.do). */
  precious?: boolean;
  /** A one-line description for `--list`. */
  description?: string;
  /**
   * The recipe's own function(s) this target runs, when `builder` wraps them (as `file()`
   * and `fs()` do): the top-level statements they reach in the recipe's sources count in
   * its identity. Default: `builder`.
   */
  source?: Function | readonly Function[];
  /**
   * The name is derived by a helper from its inputs (`libs.layer`): when another
   * definition holds it already, this one takes another name instead of failing — the
   * given one (`libs@simple.layer`), or with `true` the name with a short hash of its
   * definition (`libs+1f2e3d.runlocal`).
   */
  derived?: string | boolean;
  /**
   * Its output is a function of its inputs alone (no effect outside it, nothing read
   * from a place crecipe does not record), so a shared cache (`--cache`) may store it and
   * hand it to another machine instead of building it. Default false: runs, loads and
   * pushes act on the world. crecipe's own fs, layer, image, gz… targets are shared.
   */
  shared?: boolean;
  /**
   * Its output is a directory of a few files (an image layout): a no-op stats every one
   * of them, not only the directory, so an edit to any (a blob that is a hard link to a
   * layer edited in place) rebuilds it. Default: a directory is signed by its top alone.
   */
  signsFiles?: boolean;
}

/** A declared target. Immutable; compare by identity. */
export interface Node<T = unknown> {
  /** The marker that makes it a node (its name). */
  readonly [NODE]: string;
  /** Its name: the output is out/NAME. */
  readonly name: string;
  /** What kind of target it is ("fs", "layer", …), for listings. */
  readonly kind: string;
  /** What builds it. */
  readonly builder: Builder<T>;
  /** The inputs that define it besides its builder's text. */
  readonly options: unknown;
  /** Kept by --clean. */
  readonly precious: boolean;
  /** A shared cache may store and provide its output (TargetOptions.shared). */
  readonly shared: boolean;
  /** A no-op stats every file of its output directory (TargetOptions.signsFiles). */
  readonly signsFiles: boolean;
  /** A one-line description for --list. */
  readonly description?: string;
  /** Hash of kind, builder text, options and the sources it reads: a change means "rebuild". */
  readonly identity: string;
  /** Hash of kind, builder text and options alone. */
  readonly recipe: string;
  /** The top-level statements of the recipe's sources its builder reaches (see `TargetOptions.source`). */
  readonly sources: readonly SourceRef[];
  /** Where it was declared, e.g. "recipes/simple.ts:12:21". Computed on demand. */
  readonly site: string;
}

/** A built target as builders and scripts see it. */
export interface Result<T = unknown> {
  /** The target's name. */
  name: string;
  /** Absolute path of the output in the out dir, or undefined for a value-only target. */
  path: string | undefined;
  /** What the builder returned (JSON), or null. */
  value: T;
  /** Content hash of the output and value: equal stamps mean equal outputs. */
  stamp: string;
  /** Whether this run built it (false: it was up to date). */
  built: boolean;
  /**
   * For a directory output: its manifest (every entry with type, mode, size, sha256 and
   * what stat said when it was built), so readers never hash the tree again.
   */
  manifest?: string;
}

/** What a builder gets: where to write, and how to depend on targets and host files. */
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
  /** Whether the build runs with -v. */
  readonly verbose: boolean;
  /** Build another target (a node or its declared name), if needed, and depend on it; resolves to its output path. */
  need(node: Node | string): Promise<string>;
  /** Build several targets at once; resolves to their output paths. */
  needAll(nodes: readonly (Node | string)[]): Promise<string[]>;
  /** Like need(), with the whole result (value, stamp, manifest). */
  result<T>(node: Node<T> | string): Promise<Result<T>>;
  /** Depend on host files or directories: a change of content rebuilds this target. */
  dependOn(...paths: string[]): void;
  /** Read a host file and depend on it. */
  read(path: string): Promise<Buffer>;
  /** Write a line to this target's log. */
  log(...args: unknown[]): void;
  /** Tell the person building something they should know (printed once, and logged). */
  warn(message: string): void;
  /** Remember the command being run, for the failure report (the `$` wrapper does this). */
  noteCommand(command: string): void;
  /**
   * The content hash of what was written at `out`, when the builder computed it while
   * writing (archives do, an image directory names its blobs by digest): the engine then
   * does not read a large output again. A directory with a trusted hash gets no manifest.
   */
  trustOutputHash(hash: string): void;
  /** Called by process helpers so children are killed on Ctrl-C. */
  trackChild(pid: number): () => void;
}
