/**
 * Is a target up to date? redo's isdirty: it decides and says why, nothing else (the
 * caller prints warnings and stores refreshed signatures). Dirty when: never built; its
 * state is from another version or unreadable; its builder text or options changed; its
 * output is missing or was edited by hand; a host file it read changed content; an
 * upstream target's stamp changed (upstream is made current first, by the caller).
 *
 * Cost: a stat per output and per host file. A tree output is signed by its top
 * directory (an image's by every file's stat); the tree is compared with its manifest
 * only when that changed or when a deep check is asked for (`--check`), which also
 * reads every file output and every image blob.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { hashFile, hostContentHash, hostSignature, outputSignature, outputSignatureLike } from "./hash.ts";
import { lookup } from "./node.ts";
import { describeRef } from "./sources.ts";
import { verifyTree } from "./manifest.ts";
import { type Layout, outputPath, type ReadResult, type TargetState, treeDir } from "./state.ts";
import type { Node } from "./types.ts";

/** Why a target is (or would be) rebuilt; `dirty: false` means up to date. */
export interface Verdict {
  dirty: boolean;
  /** "maybe": an upstream target would rebuild and may or may not change (dry runs). */
  maybe?: boolean;
  reason: string;
  state?: TargetState;
  /** The output was changed on disk since it was built: what changed, for a warning. */
  handEdit?: { path: string; what: string };
  /** The state could not be read: why, for a warning. */
  unreadable?: string;
  /** Signatures that changed while the content did not (a touch): worth storing. */
  refresh?: { output?: string; deps: Map<number, string>; manifest?: ManifestRefresh };
}

/** A tree's files whose stat alone changed, by their place in its manifest (verifyTree). */
export interface ManifestRefresh {
  path: string;
  restated: Map<number, string>;
}

export interface DirtyOptions {
  layout: Layout;
  /** Compare tree outputs with their manifests even when their top directory is unchanged. */
  deep?: boolean;
  /** A path as messages show it. */
  show(p: string): string;
}

/** `upstream` makes a target dependency current and returns its stamp ("rebuild" in a dry run). */
export async function isDirty(node: Node, read: ReadResult, options: DirtyOptions, upstream: (dep: Node) => Promise<string>): Promise<Verdict> {
  if (!read.ok) {
    if (read.reason === "corrupt") return { dirty: true, reason: "its state file was unreadable", unreadable: read.detail };
    if (read.reason === "older") return { dirty: true, reason: "it was built by an older crecipe" };
    return { dirty: true, reason: "it was never built" };
  }
  const state = read.state;
  if (state.identity !== node.identity) return { dirty: true, reason: recipeChange(node, state), state };
  const refresh: NonNullable<Verdict["refresh"]> = { deps: new Map() };
  if (state.output !== "none") {
    const out = outputPath(options.layout, node.name);
    let changed: ReturnType<typeof checkOutput>;
    try {
      changed = checkOutput(out, state, options, node.signsFiles);
    } catch (error) {
      // A manifest that is not one, an output this user cannot read: rebuild, and say why.
      return { dirty: true, reason: `its output ${options.show(out)} cannot be checked`, state, unreadable: (error as Error).message };
    }
    if (changed === "missing") return { dirty: true, reason: `its output ${options.show(out)} is missing`, state };
    if (changed?.edit) {
      return { dirty: true, reason: `its output ${options.show(out)} was modified by hand (${changed.edit})`, state, handEdit: { path: options.show(out), what: changed.edit } };
    }
    if (changed?.sig) refresh.output = changed.sig;
    if (changed?.manifest) refresh.manifest = changed.manifest;
  }
  const targetDeps: { dep: Node; stamp: string }[] = [];
  for (const [index, dep] of state.deps.entries()) {
    if ("file" in dep) {
      let now: ReturnType<typeof hostSignature>;
      let hash: string | null;
      try {
        now = hostSignature(dep.file);
        if (now.sig === dep.sig) continue;
        hash = now.kind === "missing" ? null : hostContentHash(dep.file) ?? null;
      } catch (error) {
        // Unreadable now (its permissions changed): rebuild; the builder's read says what to do.
        return { dirty: true, reason: `host file ${dep.file} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, state };
      }
      if (hash !== dep.hash) return { dirty: true, reason: `host file ${dep.file} changed`, state };
      refresh.deps.set(index, now.sig);
    } else {
      const declared = lookup(dep.target);
      if (!declared) return { dirty: true, reason: `it needed ${dep.target}, which is no longer declared`, state };
      targetDeps.push({ dep: declared, stamp: dep.stamp });
    }
  }
  const stamps = await Promise.all(targetDeps.map((d) => upstream(d.dep)));
  for (let i = 0; i < stamps.length; i++) {
    if (stamps[i] === "rebuild") return { dirty: true, maybe: true, reason: `${targetDeps[i].dep.name} would rebuild`, state };
    if (stamps[i] !== targetDeps[i].stamp) return { dirty: true, reason: `upstream ${targetDeps[i].dep.name} changed`, state };
  }
  const worth = refresh.output !== undefined || refresh.deps.size > 0 || refresh.manifest !== undefined;
  return { dirty: false, reason: "up to date", state, refresh: worth ? refresh : undefined };
}

/**
 * What changed in a target's definition: its builder's text or options, or (when those
 * are the same) which statements of the recipe's sources it reads: "GREETING changed
 * (r.ts:3)".
 */
function recipeChange(node: Node, state: TargetState): string {
  const before = new Map((state.sources ?? []).map(([key, hash, line, name]) => [key, { hash, line, name }]));
  const sameRecipe = (state.recipe ?? state.identity) === node.recipe;
  const changed: string[] = [];
  for (const ref of node.sources) {
    const old = before.get(ref.key);
    if (!old) changed.push(`it now reads ${describeRef(ref)}`);
    else if (old.hash !== ref.hash) changed.push(`${describeRef(ref).replace(" (", " changed (")}`);
    before.delete(ref.key);
  }
  for (const [key, old] of before) changed.push(`it no longer reads ${describeRef({ name: old.name, file: key.slice(0, key.lastIndexOf("#")), line: old.line ?? undefined })}`);
  if (sameRecipe && changed.length) return changed.join("; ");
  if (sameRecipe) return "its recipe changed";
  return "its recipe (builder text or options) changed";
}

/**
 * Has the output changed since it was built? undefined: no; "missing"; `{ edit }`: it
 * was changed (what); `{ sig }`: its signature changed but not its content.
 */
function checkOutput(out: string, state: TargetState, options: DirtyOptions, signsFiles: boolean): undefined | "missing" | { edit?: string; sig?: string; manifest?: ManifestRefresh } {
  const now = outputSignatureLike(out, state.sig);
  if (now.kind === "missing") return "missing";
  if (now.kind !== state.output) return { edit: `it is now a ${now.kind}` };
  const same = now.sig === state.sig;
  if (state.output === "dir") {
    if (!state.manifest) {
      if (!same) return { edit: state.sig.startsWith("files:") ? "a file in it changed, came or went" : "its top directory changed" };
      // Signed by its top by an older crecipe: signed by every file from now on.
      if (signsFiles && !state.sig.startsWith("files:")) return { sig: outputSignature(out, true).sig };
      if (!options.deep) return undefined;
      // --check of a directory of content-addressed blobs (an image): each blob's bytes.
      const wrong = badBlob(out);
      return wrong ? { edit: `${wrong} does not hold the bytes its name says` } : undefined;
    }
    // Lists and layers read the manifest, not the tree: without it the tree is rebuilt (two stats).
    const manifest = path.join(treeDir(options.layout), state.manifest);
    if (!fs.existsSync(`${manifest}.list`) || !fs.existsSync(`${manifest}.stat`)) return { edit: `its manifest (${options.show(manifest)}.list, .stat) is missing` };
    if (same && !options.deep) return undefined;
    const { difference, restated } = verifyTree(out, manifest, options.deep);
    if (difference) return { edit: difference };
    const refresh = restated.size ? { path: manifest, restated } : undefined;
    return same && !refresh ? undefined : { sig: same ? undefined : now.sig, manifest: refresh };
  }
  if (same && !options.deep) return undefined;
  // --check reads every file output: an edit that put the mtime back keeps the stat (but
  // not the ctime, which keys the in-process hash cache).
  const hash = state.output === "file" ? hashFile(out) : hostContentHash(out);
  if (hash !== state.outHash) return { edit: "its content changed" };
  return same ? undefined : { sig: now.sig };
}

/** The first file under `dir`/blobs/sha256 whose sha256 is not its name (an OCI layout's blobs), if any. */
function badBlob(dir: string): string | undefined {
  const blobs = path.join(dir, "blobs", "sha256");
  let names: string[];
  try {
    names = fs.readdirSync(blobs).sort();
  } catch {
    return undefined; // not an image layout
  }
  for (const name of names) {
    const blob = path.join(blobs, name);
    // A FIFO put there must not hang the check: only a regular file is read.
    if (!fs.lstatSync(blob).isFile() || hashFile(blob) !== name) return `blobs/sha256/${name}`;
  }
  return undefined;
}
