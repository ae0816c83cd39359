/**
 * Committing one build (redo's builder.py does this in one step too): the output is
 * stamped, renamed into place, its manifest and its state written. Everything here is
 * synchronous, so a signal handler cannot run half-way. It runs in the process that
 * built the target, under that target's lock.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { hashFile, hostContentHash, kindOf, outputSignature, sha256, stableStringify } from "./hash.ts";
import { manifestName, writeManifest } from "./manifest.ts";
import { type Dep, type Layout, outputPath, STATE_VERSION, type TargetState, treeDir, writeState } from "./state.ts";
import type { Node } from "./types.ts";

export interface Built {
  /** The temp dir holding `out` (and room for the old output while it is replaced). */
  workDir: string;
  out: string;
  value: unknown;
  deps: Dep[];
  /** The output's hash when the builder computed it while writing. */
  trustedHash?: string;
  started: number;
}

export function commit(layout: Layout, node: Node, built: Built): TargetState {
  const kind = kindOf(fs.lstatSync(built.out, { throwIfNoEntry: false }));
  const output: TargetState["output"] = kind === "missing" ? "none" : kind === "dir" ? "dir" : kind === "symlink" ? "symlink" : "file";
  const valueJson = built.value === undefined ? null : JSON.parse(stableStringify(built.value));
  let outHash: string | undefined;
  let manifest: string | undefined;
  const manifestTemp = path.join(built.workDir, "manifest");
  if (output === "file") outHash = built.trustedHash ?? hashFile(built.out);
  else if (output === "symlink") outHash = hostContentHash(built.out);
  else if (output === "dir") {
    if (built.trustedHash) outHash = built.trustedHash;
    else {
      outHash = writeManifest(built.out, manifestTemp);
      manifest = manifestName(node.name, outHash);
    }
  }
  const stamp = sha256(`${outHash ?? ""}\0${stableStringify(valueJson)}`);
  const final = outputPath(layout, node.name);
  const old = path.join(built.workDir, "old");
  if (fs.lstatSync(final, { throwIfNoEntry: false })) fs.renameSync(final, old);
  if (output !== "none") fs.renameSync(built.out, final);
  if (manifest) {
    fs.mkdirSync(treeDir(layout), { recursive: true });
    for (const part of [".list", ".stat"]) fs.renameSync(manifestTemp + part, path.join(treeDir(layout), manifest + part));
  }
  const state: TargetState = {
    v: STATE_VERSION,
    identity: node.identity,
    stamp,
    output,
    sig: output === "none" ? "" : outputSignature(final).sig,
    value: valueJson,
    deps: built.deps,
    builtAt: new Date().toISOString(),
    seconds: Math.round(performance.now() - built.started) / 1000,
    outHash: outHash ?? null,
    manifest,
    precious: node.precious,
  };
  writeState(layout, node.name, state);
  removeStaleManifests(layout, node.name, manifest);
  return state;
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
