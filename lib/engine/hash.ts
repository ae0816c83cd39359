/** Content hashes and cheap stat signatures for outputs and host files. */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { NODE } from "./types.ts";
import { readlinkBytes } from "./io.ts";
import { walkSorted } from "./walk.ts";
import { readXattrs } from "./xattrs.ts";

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * JSON with sorted keys, so equal options always hash alike. For hashing only (target
 * options): nodes appear by name, functions by their text, bigints, Maps, Sets, regexps
 * and non-finite numbers by what they hold, so different options never hash alike.
 * A circular structure or a Symbol cannot be hashed: an UnstorableValue says where.
 */
export function stableStringify(value: unknown): string {
  return JSON.stringify(hashable(value, "value")) ?? "undefined";
}

/** What stableStringify writes, before it is written; `root` names `value` in an UnstorableValue. */
export function hashable(value: unknown, root: string): unknown {
  return canonical(value, "hash", root, new Set());
}

/**
 * A builder's value as it is stored: plain JSON with sorted keys. A value JSON would not
 * give back as it was (a circular one, a BigInt, a Map, a function, a Date…) is refused:
 * an UnstorableValue says where in it and what it is. `undefined` stands for null at the
 * top and drops from objects (reading the key back gives undefined again).
 */
export function storedValue(value: unknown): unknown {
  return value === undefined ? null : canonical(value, "store", "value", new Set());
}

/** A value that cannot be stored (or options that cannot be hashed): where in it, what, and what to do. */
export class UnstorableValue extends Error {
  constructor(readonly where: string, readonly what: string, readonly hint: string) {
    super(`${where} is ${what}`);
    this.name = "UnstorableValue";
  }
}

const plain = (v: object) => {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

const member = (where: string, key: string) => /^[A-Za-z_$][\w$]*$/.test(key) ? `${where}.${key}` : `${where}[${JSON.stringify(key)}]`;

/**
 * The JSON-ready form of `value`. "hash" keeps what JSON.stringify did for plain data (the
 * identities of existing targets do not change) and encodes the rest; "store" refuses
 * anything but plain data.
 */
function canonical(value: unknown, mode: "hash" | "store", where: string, ancestors: Set<object>): unknown {
  const refuse = (what: string, hint: string): never => {
    throw new UnstorableValue(where, what, hint);
  };
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "undefined":
      return undefined;
    case "number":
      if (Number.isFinite(value)) return value;
      return mode === "hash" ? `number:${value}` : refuse(String(value), "JSON has no NaN or Infinity: use null or a string");
    case "bigint":
      return mode === "hash" ? `bigint:${value}` : refuse("a BigInt", "store it as a string (String(n)) or a number");
    case "function":
      return mode === "hash" ? `fn:${value.toString()}` : refuse("a function", "return data, not functions");
    case "symbol":
      return refuse("a Symbol", "use a string");
  }
  if (value === null) return null;
  const object = value as object;
  if (ancestors.has(object)) refuse("a circular reference (to an object that contains it)", "make it a tree: drop the back reference");
  if (typeof (object as { [NODE]?: unknown })[NODE] === "string") {
    if (mode === "hash") return { target: (object as { name: string }).name };
    refuse(`the target ${(object as { name: string }).name}`, "return its name, or the path need() gives");
  }
  ancestors.add(object);
  try {
    if (mode === "hash" && typeof (object as { toJSON?: unknown }).toJSON === "function") {
      return canonical((object as { toJSON(key: string): unknown }).toJSON(""), mode, where, ancestors); // a Date, a Buffer, a URL: as JSON has them
    }
    if (Array.isArray(object)) {
      return Array.from(object, (item, index) => {
        // JSON makes undefined in an array null: fine for a hash, not for a stored value.
        if (item === undefined && mode === "store") throw new UnstorableValue(`${where}[${index}]`, "undefined", "use null");
        const encoded = canonical(item, mode, `${where}[${index}]`, ancestors);
        return encoded === undefined ? null : encoded;
      });
    }
    if (object instanceof Uint8Array) {
      if (mode === "hash") return { bytes: Buffer.from(object).toString("base64") };
      refuse(`a ${object.constructor.name}`, "return it as a string (base64), or write it to the output file");
    }
    if (object instanceof Map) {
      if (mode === "hash") return { map: canonical([...object], mode, where, ancestors) };
      refuse("a Map", "return Object.fromEntries(map), or [...map]");
    }
    if (object instanceof Set) {
      if (mode === "hash") return { set: canonical([...object], mode, where, ancestors) };
      refuse("a Set", "return [...set]");
    }
    if (object instanceof RegExp && mode === "hash") return `regexp:${object}`;
    if (mode === "store" && !plain(object)) {
      const kind = object.constructor?.name ?? "object";
      refuse(`a ${kind}`, object instanceof Date ? "return date.toISOString()" : "return plain data (objects, arrays, strings, numbers, booleans, null)");
    }
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(object).sort()) {
      const encoded = canonical((object as Record<string, unknown>)[key], mode, member(where, key), ancestors);
      if (encoded !== undefined) out[key] = encoded;
    }
    return out;
  } finally {
    ancestors.delete(object);
  }
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
 * `files` (TargetOptions.signsFiles; a stored signature says it with its "files:"
 * prefix): a directory of a few files is signed by every entry's stat.
 */
export function outputSignature(p: string, files = false): { kind: PathKind; sig: string } {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return { kind: "missing", sig: "missing" };
  // No ctime: an image hard-links its layers' outputs, which changes their ctime only.
  const sign = (s: fs.Stats) => `${kindOf(s)}:${s.size}:${s.mtimeMs}:${s.ino}:${s.mode}`;
  if (!files || !st.isDirectory()) return { kind: kindOf(st), sig: sign(st) };
  const h = createHash("sha256");
  walkSorted(p, (rel, _full, s) => h.update(rel).update(`\0${sign(s)}\n`));
  return { kind: "dir", sig: `files:${sign(st)}:${h.digest("hex")}` };
}

/** outputSignature in the way a stored signature was made. */
export const outputSignatureLike = (p: string, stored: string) => outputSignature(p, stored.startsWith("files:"));

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
  return attrs ? sha256Hex(`${contentHash}\0${stableStringify(attrs)}`) : contentHash;
}

/** The content hash of a host input: a file, a symlink (its target) or a whole directory. */
export function hostContentHash(p: string): string | undefined {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return undefined;
  if (st.isFile()) return withXattrs(p, hashFile(p, st));
  if (st.isSymbolicLink()) return sha256Hex(`symlink\0${fs.readlinkSync(p)}`);
  if (st.isDirectory()) {
    const h = createHash("sha256");
    walkSorted(p, (rel, full, s) => {
      const mode = (s.mode & 0o170000).toString(8) + ":" + (s.mode & 0o7777).toString(8);
      let body: string | Buffer = "";
      if (s.isFile()) body = hashFile(full, s);
      else if (s.isSymbolicLink()) body = readlinkBytes(full);
      else if (s.isCharacterDevice() || s.isBlockDevice()) body = String(s.rdev);
      h.update(rel).update(`\0${mode}\0`).update(body).update("\n");
    });
    const attrs = readXattrs([p], { recursive: true });
    if (attrs.size) h.update(stableStringify([...attrs].sort(([a], [b]) => (a < b ? -1 : 1))));
    return `tree:${h.digest("hex")}`;
  }
  return sha256Hex(`other\0${st.mode}\0${st.rdev}`);
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
