/**
 * What the engine asks of a shared cache (`--cache`; a registry-backed one is in
 * net/cache.ts), and the keys it asks with.
 *
 * A target's output is stored under a key that is the hash of all its inputs: its
 * identity (builder text, options, the recipe statements it reads) and every dependency
 * it recorded while building, each with its stamp (another target) or content hash (a
 * host file). Dependencies are found while building, so a machine that has not built
 * the target cannot compute its key at once: the cache also keeps, per identity, the
 * dependency lists builds of it recorded. The engine brings those dependencies up to
 * date here (built, or from the cache in turn), computes the key from their stamps, and
 * asks for it: an output built from other inputs is never taken.
 */
import * as path from "node:path";
import { sha256Hex } from "./hash.ts";
import type { Dep } from "./state.ts";
import type { Node } from "./types.ts";

/** A dependency as the cache records it: a target by name, a host file by path (relative to the working directory when under it). */
export type CachedDep = { target: string } | { file: string };

/** One way a build of the identity went: what it depended on, and the key that gave. */
export interface Candidate {
  /** The dependencies that build recorded, in the order it asked for them. */
  deps: CachedDep[];
  /** The key its inputs gave (cacheKey). */
  key: string;
}

/** An output the cache handed over, written to the path the engine gave. */
export interface Fetched {
  /** The builder's value, as stored. */
  value: unknown;
  /** The stamp the output had where it was built: a commit that computes another is a miss. */
  stamp: string;
  /** The output hash to trust (an image's manifest digest), for outputs whose hash the builder gave. */
  trustedHash?: string;
}

/** A file output of a dependency: its target, where it is, and its sha256. */
export interface Upstream {
  /** The target's name. */
  target: string;
  /** Its output file. */
  path: string;
  /** The file's sha256 (hex). */
  sha256: string;
}

/** A built output to store, with what its state says of it. */
export interface StoreEntry {
  /** The target's portable identity (portableIdentity). */
  identity: string;
  /** The key of its inputs (cacheKey). */
  key: string;
  /** Its name. */
  target: string;
  /** What it depended on, as the cache records it. */
  deps: CachedDep[];
  /** Its stamp: what a fetch must hash to. */
  stamp: string;
  /** Its builder's value, as stored. */
  value: unknown;
  /** The output's own hash (its state's outHash). */
  outHash: string | null;
  /** What the output is on disk. */
  output: "file" | "dir" | "symlink" | "none";
  /** Where the output is. */
  path: string;
  /** A scratch directory for the store to use (removed afterwards). */
  tmp: string;
  /**
   * The file outputs of the targets it depends on: a file of a directory output that is
   * one of them (hard-linked, as an image's blobs are its layers) is stored as a reference.
   */
  upstream: Upstream[];
}

/** A shared cache, from the engine's side. */
export interface RemoteCache {
  /** Where it is, for messages ("host/repo"). */
  readonly where: string;
  /** Only read from it (an untrusted client: a pull request's CI). */
  readonly readOnly: boolean;
  /** The dependency lists builds of `identity` recorded, newest first (none when unknown). */
  candidates(identity: string, target: string): Promise<Candidate[]>;
  /**
   * Write the output stored under `key` at `out`, verified; undefined when it is not
   * there. `upstream` are the file outputs of the targets it depends on, as they are here
   * (the key says they are the ones it was built from): files of a directory output that
   * were stored as references to them are linked from there.
   */
  fetch(key: string, target: string, out: string, upstream: Upstream[]): Promise<Fetched | undefined>;
  /** Store an output (at `path`; `tmp` is a scratch dir) under `key` and record its dependency list under `identity`. */
  store(entry: StoreEntry): Promise<void>;
}

/**
 * `node`'s identity as the cache keys it: the same as the engine's, except that the
 * recipe statements it reads are named relative to the working directory, so two
 * checkouts of one project at different places share their outputs.
 */
export function portableIdentity(node: Node): string {
  if (!node.sources.length) return node.recipe;
  const cwd = process.cwd() + path.sep;
  const sources = node.sources.map((s) => [s.key.startsWith(cwd) ? s.key.slice(cwd.length) : s.key, s.hash]);
  return sha256Hex(JSON.stringify([node.recipe, sources]));
}

/** A host file's path as the cache records it: relative to the working directory when under it. */
export function portablePath(file: string): string {
  const cwd = process.cwd() + path.sep;
  return file.startsWith(cwd) ? `./${file.slice(cwd.length)}` : file;
}

/** The key of an output: its identity and every dependency with what it was. */
export function cacheKey(identity: string, deps: readonly Dep[]): string {
  return sha256Hex(JSON.stringify([identity, deps.map((d) => ("target" in d ? ["t", d.target, d.stamp] : ["f", portablePath(d.file), d.hash]))]));
}

/** The dependency list as the cache records it. */
export function cachedDeps(deps: readonly Dep[]): CachedDep[] {
  return deps.map((d) => ("target" in d ? { target: d.target } : { file: portablePath(d.file) }));
}
