/**
 * Committing one build (redo's builder.py does this in one step too): the output is
 * stamped, renamed into place with its manifest, and its state written. Everything here
 * is synchronous, so a signal handler cannot run half-way; a failure (a full disk) undoes
 * what moved. It runs in the process that built the target, under that target's lock.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CrecipeError, DENIED, systemError } from "./errors.ts";
import { hashFile, hostContentHash, kindOf, outputSignature, sha256Hex, stableStringify, storedValue, UnstorableValue } from "./hash.ts";
import { manifestName, writeManifest } from "./manifest.ts";
import { type Dep, type Layout, outputPath, STATE_VERSION, stateFile, type TargetState, treeDir } from "./state.ts";
import type { Node } from "./types.ts";

export interface Built {
  /** The temp dir holding `out` (and room for the old output while it is replaced). */
  workDir: string;
  out: string;
  value: unknown;
  deps: Dep[];
  /** The output's hash when the builder computed it while writing. */
  trustedHash?: string;
  /** The stamp the output must have (one taken from a shared cache); another is an error, before anything moves. */
  expectedStamp?: string;
  started: number;
}

/**
 * Stamp the output (for a tree: write its manifest, letting the event loop run so a
 * signal can still stop the build), then, unless `signal` says the build was stopped,
 * move everything into place in one synchronous step.
 */
export async function commit(layout: Layout, node: Node, built: Built, signal: AbortSignal): Promise<TargetState> {
  const kind = kindOf(fs.lstatSync(built.out, { throwIfNoEntry: false }));
  const output: TargetState["output"] = kind === "missing" ? "none" : kind === "dir" ? "dir" : kind === "symlink" ? "symlink" : "file";
  const valueJson = storable(node.name, built.value);
  let outHash: string | undefined;
  let manifest: string | undefined;
  const manifestTemp = path.join(built.workDir, "manifest");
  if (output === "file") outHash = built.trustedHash ?? hashFile(built.out);
  else if (output === "symlink") outHash = hostContentHash(built.out);
  else if (output === "dir") {
    if (built.trustedHash) outHash = built.trustedHash;
    else {
      outHash = await writeManifest(built.out, manifestTemp).catch((error) => {
        throw unreadable(error, node.name, built.out) ?? error;
      });
      manifest = manifestName(node.name, outHash);
    }
  }
  // A signal that came while the builder or the manifest worked is handled now, before anything moves.
  await new Promise((resolve) => setImmediate(resolve));
  if (signal.aborted) throw signal.reason;
  const stamp = sha256Hex(`${outHash ?? ""}\0${stableStringify(valueJson)}`);
  if (built.expectedStamp !== undefined && stamp !== built.expectedStamp) {
    throw new CrecipeError(`what the cache gave hashes to ${stamp.slice(0, 12)}…, not to the stamp ${built.expectedStamp.slice(0, 12)}… it was stored with`, { target: node.name });
  }
  const final = outputPath(layout, node.name);
  const old = path.join(built.workDir, "old");
  const state: TargetState = {
    v: STATE_VERSION,
    identity: node.identity,
    ...(node.sources.length ? { recipe: node.recipe, sources: node.sources.map((s) => [s.key, s.hash, s.line ?? null, s.name] as [string, string, number | null, string]) } : {}),
    stamp,
    output,
    sig: output === "none" ? "" : outputSignature(built.out, node.signsFiles).sig,
    value: valueJson,
    deps: built.deps,
    builtAt: new Date().toISOString(),
    seconds: Math.round(performance.now() - built.started) / 1000,
    outHash: outHash ?? null,
    manifest,
    precious: node.precious,
  };
  // The new state is written first, beside the old one: a full disk fails here, before
  // anything moved. Then the output, its manifest and the state move in by renames, each
  // undone if a later one fails: the old pair or the new pair, never half of each.
  const stateTemp = path.join(built.workDir, "state.json");
  fs.writeFileSync(stateTemp, JSON.stringify(state) + "\n");
  const undo: (() => void)[] = [];
  const move = (from: string, to: string) => {
    fs.renameSync(from, to);
    undo.push(() => fs.renameSync(to, from));
  };
  try {
    if (fs.lstatSync(final, { throwIfNoEntry: false })) move(final, old);
    if (output !== "none") {
      move(built.out, final);
      const sig = outputSignature(final, node.signsFiles).sig;
      if (sig !== state.sig) fs.writeFileSync(stateTemp, JSON.stringify({ ...state, sig }) + "\n"), (state.sig = sig);
    }
    if (manifest) {
      fs.mkdirSync(treeDir(layout), { recursive: true });
      for (const part of [".list", ".stat"]) move(manifestTemp + part, path.join(treeDir(layout), manifest + part));
    }
    fs.mkdirSync(path.dirname(stateFile(layout, node.name)), { recursive: true });
    fs.renameSync(stateTemp, stateFile(layout, node.name)); // the commit point
  } catch (error) {
    for (const step of undo.reverse()) {
      try {
        step();
      } catch { /* as far as it goes: the state was not replaced, so the next run rebuilds */ }
    }
    throw error;
  }
  removeStaleManifests(layout, node.name, manifest);
  return state;
}

/**
 * A tree its builder left unreadable in part (a directory of mode 000, as the user who
 * builds): the error names the path in the tree, not the temp dir it will not be found
 * in, and says what to do.
 */
function unreadable(error: unknown, target: string, out: string): CrecipeError | undefined {
  const e = systemError(error);
  if (!e || !DENIED.has(e.code!) || typeof e.path !== "string" || !e.path.startsWith(out + "/")) return undefined;
  const rel = e.path.slice(out.length);
  return new CrecipeError(`cannot read ${rel} in the tree its builder made (permission denied): every entry of a tree is read to list it`, {
    target,
    fix: `leave ${rel} readable: chmod it (root.chmod("${rel}", 0o755) for a directory, 0o644 for a file) before the builder returns, or build as root`,
    cause: error,
  });
}

/** The builder's value as it will be stored, or an error naming the target and what in it JSON cannot keep. */
function storable(name: string, value: unknown): unknown {
  try {
    return storedValue(value);
  } catch (error) {
    if (!(error instanceof UnstorableValue)) throw error;
    throw new CrecipeError(`the value it returned cannot be stored as JSON: ${error.message}`, { target: name, fix: error.hint });
  }
}

/** Manifests of earlier builds of this target (the state no longer names them). */
function removeStaleManifests(layout: Layout, name: string, keep: string | undefined): void {
  let files: string[];
  try {
    files = fs.readdirSync(treeDir(layout));
  } catch {
    return;
  }
  const prefix = `${name}.`;
  for (const file of files) {
    const rest = file.slice(prefix.length);
    if (file.startsWith(prefix) && /^[0-9a-f]{16}\.(list|stat)$/.test(rest) && `${name}.${rest.slice(0, 16)}` !== keep) {
      fs.rmSync(path.join(treeDir(layout), file), { force: true });
    }
  }
}
