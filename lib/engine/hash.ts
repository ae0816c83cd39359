/** Content hashes and cheap stat signatures for outputs and host files. */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { NODE } from "./types.ts";
import { walkSorted } from "./walk.ts";
import { readXattrs } from "./xattrs.ts";

export function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** JSON with sorted keys, so equal options always hash alike. Nodes appear by name. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(value, (_key, v) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      if (typeof (v as { [NODE]?: unknown })[NODE] === "string") return { target: (v as { name: string }).name };
      if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString("base64") };
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]));
    }
    if (typeof v === "function") return `fn:${v.toString()}`;
    if (typeof v === "bigint") return `bigint:${v}`;
    return v;
  });
}

export type PathKind = "file" | "dir" | "symlink" | "missing" | "other";

export function kindOf(st: fs.Stats | undefined): PathKind {
  if (!st) return "missing";
  return st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other";
}

/** What stat says of one path, without reading it: a rewrite, chmod or replacement changes it. */
export function entrySignature(st: fs.Stats): string {
  // mtimeMs/ctimeMs keep microseconds: enough to see a rewrite, and no BigInt garbage.
  return `${kindOf(st)}:${st.size}:${st.mtimeMs}:${st.ino}:${st.ctimeMs}:${st.mode}`;
}

/**
 * The signature of an output: what stat says of it, the top directory alone for a tree.
 * O(1) whatever the tree's size; a tree's deeper entries are checked against its
 * manifest only when this changed or a deep check was asked for (see manifest.ts).
 */
export function outputSignature(p: string): { kind: PathKind; sig: string } {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return { kind: "missing", sig: "missing" };
  // No ctime: an image hard-links its layers' outputs, which changes their ctime only.
  return { kind: kindOf(st), sig: `${kindOf(st)}:${st.size}:${st.mtimeMs}:${st.ino}:${st.mode}` };
}

/**
 * The signature of a host input (a file the recipe reads, or a directory of them): for a
 * directory, every entry's stat, since an edit anywhere in a source tree must be seen.
 */
export function hostSignature(p: string): { kind: PathKind; sig: string } {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return { kind: "missing", sig: "missing" };
  if (!st.isDirectory()) return { kind: kindOf(st), sig: entrySignature(st) };
  const h = createHash("sha256");
  walkSorted(p, (rel, _full, s) => h.update(rel).update(`\0${entrySignature(s)}\n`));
  return { kind: "dir", sig: `d:${h.digest("hex")}` };
}

/**
 * A host file's content hash with its extended attributes (a file capability) folded in:
 * they are part of what a copy of it carries. The plain content hash when it has none.
 */
export function withXattrs(p: string, contentHash: string): string {
  const attrs = readXattrs([p]).get(p);
  return attrs ? sha256(`${contentHash}\0${stableStringify(attrs)}`) : contentHash;
}

/** The content hash of a host input: a file, a symlink (its target) or a whole directory. */
export function hostContentHash(p: string): string | undefined {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return undefined;
  if (st.isFile()) return withXattrs(p, hashFile(p, st));
  if (st.isSymbolicLink()) return sha256(`symlink\0${fs.readlinkSync(p)}`);
  if (st.isDirectory()) {
    const h = createHash("sha256");
    walkSorted(p, (rel, full, s) => {
      const mode = (s.mode & 0o170000).toString(8) + ":" + (s.mode & 0o7777).toString(8);
      let body: string | Buffer = "";
      if (s.isFile()) body = hashFile(full, s);
      else if (s.isSymbolicLink()) body = fs.readlinkSync(full, { encoding: "buffer" });
      else if (s.isCharacterDevice() || s.isBlockDevice()) body = String(s.rdev);
      h.update(rel).update(`\0${mode}\0`).update(body).update("\n");
    });
    const attrs = readXattrs([p], { recursive: true });
    if (attrs.size) h.update(stableStringify([...attrs].sort(([a], [b]) => (a < b ? -1 : 1))));
    return `tree:${h.digest("hex")}`;
  }
  return sha256(`other\0${st.mode}\0${st.rdev}`);
}

let chunk: Buffer | undefined;
/**
 * sha256 of files already hashed in this process, keyed by what stat says: a file read
 * as a host input and then found again in a tree is read once. ctime is in the key, so
 * any write, chmod or rename-over is a miss.
 */
const fileHashes = new Map<string, string>();

export function hashFile(p: string | Buffer, stats?: fs.Stats, cache = true): string {
  if (!cache) return hashFileUncached(p);
  const st = stats ?? fs.statSync(p);
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const known = fileHashes.get(key);
  if (known) return known;
  const digest = hashFileUncached(p);
  if (fileHashes.size > 200_000) fileHashes.clear();
  fileHashes.set(key, digest);
  return digest;
}

function hashFileUncached(p: string | Buffer): string {
  const h = createHash("sha256");
  const fd = fs.openSync(p, "r");
  try {
    const buffer = (chunk ??= Buffer.allocUnsafe(1 << 20));
    for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0;) h.update(buffer.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}
