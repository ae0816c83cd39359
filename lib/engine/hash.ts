/** Content hashes and cheap stat signatures for outputs and host files. */
import { createHash } from "node:crypto";
import * as fs from "node:fs";

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

/** Marks target nodes (set by engine/node.ts) so hashing can name them. */
export const NODE = Symbol.for("crecipe.node");

export type PathKind = "file" | "dir" | "symlink" | "missing" | "other";

/**
 * A cheap signature of a path: what stat says, without reading contents.
 * When it is unchanged the stored content hash is trusted; when it changed the
 * content is hashed again (so a touch without a change rebuilds nothing).
 */
export function statSignature(p: string): { kind: PathKind; sig: string } {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return { kind: "missing", sig: "missing" };
  if (st.isDirectory()) {
    const h = createHash("sha256");
    walk(p, Buffer.alloc(0), false, (rel, _full, s) => {
      h.update(rel).update(`\0${s.mode}\0${s.size}\0${s.mtimeMs}\0${s.ino}\0${s.ctimeMs}\n`);
    });
    return { kind: "dir", sig: `d:${h.digest("hex")}` };
  }
  const kind: PathKind = st.isFile() ? "file" : st.isSymbolicLink() ? "symlink" : "other";
  // mtimeMs/ctimeMs keep microseconds: enough to see a rewrite, and no BigInt garbage.
  return { kind, sig: `${kind}:${st.size}:${st.mtimeMs}:${st.ino}:${st.ctimeMs}:${st.mode}` };
}

/** The content hash of a file, a symlink (its target) or a whole directory tree. */
export function contentHash(p: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return undefined;
  }
  if (st.isFile()) return hashFile(p);
  if (st.isSymbolicLink()) return sha256(`symlink\0${fs.readlinkSync(p)}`);
  if (st.isDirectory()) {
    const h = createHash("sha256");
    walk(p, Buffer.alloc(0), false, (rel, full, s) => {
      const mode = (s.mode & 0o170000).toString(8) + ":" + (s.mode & 0o7777).toString(8);
      let body: string | Buffer = "";
      if (s.isFile()) body = hashFile(full);
      else if (s.isSymbolicLink()) body = fs.readlinkSync(full, { encoding: "buffer" });
      else if (s.isCharacterDevice() || s.isBlockDevice()) body = String(s.rdev);
      h.update(rel).update(`\0${mode}\0`).update(body).update("\n");
    });
    return `tree:${h.digest("hex")}`;
  }
  return sha256(`other\0${st.mode}\0${st.rdev}`);
}

let chunk: Buffer | undefined;
/**
 * sha256 of files already hashed in this process, keyed by what stat says: a tree that is
 * stamped by the engine and then listed by files() is read once, not twice. ctime is in
 * the key, so any write, chmod or rename-over is a miss.
 */
const fileHashes = new Map<string, string>();

export function hashFile(p: string | Buffer, stats?: fs.Stats): string {
  const st = stats ?? fs.statSync(p);
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const known = fileHashes.get(key);
  if (known) return known;
  const digest = hashFileUncached(p);
  if (fileHashes.size > 1_000_000) fileHashes.clear();
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

type Visit = (rel: Buffer, full: Buffer, st: fs.Stats) => void;

/** Every path under `root` (not the root), depth first, names in bytewise order, lstat'ed. */
export function walkTree(root: string, visit: Visit): void {
  walk(root, Buffer.alloc(0), false, visit);
}

/**
 * Depth-first walk in bytewise name order. Names are bytes: a non-UTF-8 name must not
 * turn into U+FFFD and then fail to stat. `rel` is relative to the root, `full` absolute.
 */
function walk(root: string, rel: Buffer, bigint: boolean, visit: Visit): void {
  const prefix = Buffer.from(root + "/");
  const dir = rel.length ? Buffer.concat([prefix, rel]) : Buffer.from(root);
  const names = fs.readdirSync(dir, { encoding: "buffer" }).sort(Buffer.compare);
  for (const name of names) {
    const child = rel.length ? Buffer.concat([rel, SLASH, name]) : name;
    const full = Buffer.concat([prefix, child]);
    const st = fs.lstatSync(full, { bigint }) as unknown as fs.Stats;
    visit(child, full, st);
    if (st.isDirectory()) walk(root, child, bigint, visit);
  }
}

const SLASH = Buffer.from("/");
