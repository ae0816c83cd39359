/**
 * The no-op fast path. After a build that left everything up to date, the engine writes
 * one summary for the targets it was asked for: every target of their graph with its
 * identity, its output's, its state file's and its host files' signatures, and the mtime
 * of the state directory (which changes whenever any state file is written, by any
 * process). The next run with the same targets checks the summary with a stat per
 * output, state and host file, and reads no state; anything different, and it takes the ordinary path
 * (dirty.ts), which finds what changed and says why.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { hostSignature, outputSignatureLike, sha256Hex } from "./hash.ts";
import { lookup } from "./node.ts";
import { type Layout, outputPath, readState, stateFile, type TargetState, writeFileAtomic } from "./state.ts";
import type { Node, Result } from "./types.ts";

const VERSION = 1;

interface Summary {
  v: number;
  /** mtimes of the state and tree directories when the summary was written. */
  states: string;
  targets: Record<string, { identity: string; output: TargetState["output"]; sig: string; files: [string, string][]; state: string }>;
  /** What build() returns for each target asked for. */
  results: Record<string, { stamp: string; value: unknown; manifest?: string }>;
}

const file = (layout: Layout, roots: readonly Node[]) =>
  path.join(layout.stateDir, "summary", `${sha256Hex(roots.map((n) => n.name).join("\0")).slice(0, 16)}.json`);

/** When a state file or a tree's manifest came or went (each its directory's mtime). */
const stateDirTime = (layout: Layout) => ["state", "tree"]
  .map((d) => fs.statSync(path.join(layout.stateDir, d), { throwIfNoEntry: false })?.mtimeMs ?? -1)
  .join(":");

const stateSignature = (layout: Layout, name: string) => {
  const st = fs.statSync(stateFile(layout, name), { throwIfNoEntry: false });
  return st ? `${st.ino}:${st.size}:${st.mtimeMs}` : "missing";
};

/** The results of `roots` when nothing changed since the summary, else undefined. */
export function upToDate(layout: Layout, roots: readonly Node[]): { results: Result[]; count: number; names: string[] } | undefined {
  try {
    return check(layout, roots, JSON.parse(fs.readFileSync(file(layout, roots), "utf8")));
  } catch {
    return undefined; // no summary, one of another shape, a host file this user cannot read: the ordinary path says
  }
}

/** upToDate on a parsed summary: one of another shape throws, and is no summary. */
function check(layout: Layout, roots: readonly Node[], summary: Summary): { results: Result[]; count: number; names: string[] } | undefined {
  if (summary.v !== VERSION || summary.states !== stateDirTime(layout)) return undefined;
  const names = Object.keys(summary.targets);
  for (const name of names) {
    const seen = summary.targets[name];
    if (lookup(name)?.identity !== seen.identity) return undefined;
    if (stateSignature(layout, name) !== seen.state) return undefined; // a state file edited in place
    if (seen.output !== "none" && outputSignatureLike(outputPath(layout, name), seen.sig).sig !== seen.sig) return undefined;
    for (const [host, sig] of seen.files) if (hostSignature(host).sig !== sig) return undefined;
  }
  const results: Result[] = [];
  for (const node of roots) {
    const r = summary.results[node.name];
    const seen = summary.targets[node.name];
    if (!r || !seen) return undefined;
    const result: Result = { name: node.name, path: seen.output === "none" ? undefined : outputPath(layout, node.name), value: r.value, stamp: r.stamp, built: false };
    if (r.manifest) result.manifest = path.join(layout.stateDir, "tree", r.manifest);
    results.push(result);
  }
  return { results, count: names.length, names };
}

/** Write the summary for `roots` after a build that made every target of `names` current. */
export function writeSummary(layout: Layout, roots: readonly Node[], names: Iterable<string>): void {
  const summary: Summary = { v: VERSION, states: stateDirTime(layout), targets: {}, results: {} };
  for (const name of names) {
    const read = readState(layout, name);
    if (!read.ok) return; // not current after all: no summary
    const state = read.state;
    summary.targets[name] = {
      identity: state.identity,
      output: state.output,
      sig: state.sig,
      files: state.deps.flatMap((d) => ("file" in d ? [[d.file, d.sig] as [string, string]] : [])),
      state: stateSignature(layout, name),
    };
  }
  for (const node of roots) {
    const read = readState(layout, node.name);
    if (!read.ok) return;
    summary.results[node.name] = { stamp: read.state.stamp, value: read.state.value, manifest: read.state.manifest };
  }
  // Written after the states it describes: a state written later moves the directory's mtime.
  if (summary.states !== stateDirTime(layout)) return;
  try {
    writeFileAtomic(file(layout, roots), JSON.stringify(summary));
  } catch { /* a read-only out dir: the ordinary path then */ }
}
