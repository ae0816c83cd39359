/**
 * The text file list: one line per entry describing a tree (or, with deletions, the
 * difference between two trees). It is what gets diffed and stored, so it must be
 * byte-exact for any path and stable: sorted by raw bytes, one space between fields,
 * every field free of spaces and newlines thanks to escaping.
 *
 * Line: `<path> <type> <mode> <uid>:<gid> <size> <hash> <link> [<xattr>=<hex> ...]`
 * - mode is 4 octal digits; hash is sha256 hex, `major,minor` for devices, or `-`;
 * - link is the escaped symlink target or hard link target path, else `-`;
 * - extended attributes, when present, follow as extra fields, sorted by name, so that
 *   capability changes survive a round trip and show up in diffs;
 * - a deletion is `<path> deleted - - - - -`.
 */
import { type Entry, type EntryType, FormatError, checkPath, comparePaths, escapePath, unescapePath } from "./entry.ts";

export { escapePath, unescapePath };

const TYPES = new Set<string>(["file", "dir", "symlink", "hardlink", "fifo", "char", "block", "whiteout"]);
const HASH = /^[0-9a-f]{64}$/;
const UINT = /^(0|[1-9][0-9]*)$/;

function isDevice(type: EntryType): boolean {
  return type === "char" || type === "block";
}

function hasLink(type: EntryType): boolean {
  return type === "symlink" || type === "hardlink";
}

function isUint(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0;
}

/** One list line (with its newline) for `e`. Throws FormatError for fields the format cannot hold; paths are the caller's to check. */
export function formatLine(e: Entry): string {
  const bad = (why: string) => new FormatError(`cannot list "${escapePath(e.path)}": ${why}`);
  if (!TYPES.has(e.type)) throw bad(`unknown type ${JSON.stringify(e.type)}`);
  if (!isUint(e.mode) || e.mode > 0o7777) throw bad(`mode ${e.mode} is not within 0..0o7777`);
  if (!isUint(e.uid) || !isUint(e.gid) || !isUint(e.size)) throw bad("uid, gid and size must be non-negative integers");
  let hash = "-";
  if (isDevice(e.type)) {
    if (!isUint(e.devMajor) || !isUint(e.devMinor)) throw bad("device numbers missing");
    hash = `${e.devMajor},${e.devMinor}`;
  } else if (e.hash !== undefined) {
    if (!HASH.test(e.hash)) throw bad(`hash ${JSON.stringify(e.hash)} is not sha256 hex`);
    hash = e.hash;
  }
  let link = "-";
  if (hasLink(e.type)) {
    if (!e.linkTarget?.length) throw bad("link target missing");
    link = escapePath(e.linkTarget);
  }
  const fields = [escapePath(e.path), e.type, e.mode.toString(8).padStart(4, "0"), `${e.uid}:${e.gid}`, String(e.size), hash, link];
  for (const name of Object.keys(e.xattrs ?? {}).sort()) {
    fields.push(`${escapePath(Buffer.from(name))}=${e.xattrs![name].toString("hex")}`);
  }
  return fields.join(" ") + "\n";
}

/**
 * The list text for `entries`, plus `deleted` lines for `deletions` (diff lists), all in
 * comparePaths order. Throws FormatError for invalid paths, duplicate paths, or fields
 * the format cannot hold.
 */
export function formatList(entries: Entry[], deletions: Buffer[] = []): string {
  const lines = [
    ...entries.map((e) => ({ path: e.path, line: formatLine(e) })),
    ...deletions.map((path) => ({ path, line: `${escapePath(path)} deleted - - - - -\n` })),
  ];
  for (const { path } of lines) checkPath(path);
  lines.sort((a, b) => comparePaths(a.path, b.path));
  for (let i = 1; i < lines.length; i++) {
    if (comparePaths(lines[i - 1].path, lines[i].path) === 0) {
      throw new FormatError(`path "${escapePath(lines[i].path)}" is listed twice`);
    }
  }
  return lines.map((l) => l.line).join("");
}

function fail(why: string): never {
  throw new FormatError(why);
}

/** One list line (without its newline) back into an entry or a deletion; throws FormatError. */
export function parseLine(line: string, options: { allowWhiteoutNames?: boolean } = {}): { entry?: Entry; deleted?: Buffer } {
  const fields = line.split(" ");
  if (fields.length < 7) fail(`expected at least 7 space-separated fields, got ${fields.length}`);
  const [pathField, type, mode, owner, size, hash, link, ...xattrFields] = fields;
  const path = unescapePath(pathField);
  checkPath(path, options);
  if (type === "deleted") {
    if (fields.length !== 7 || fields.slice(2).some((f) => f !== "-")) fail('a "deleted" line has "-" in every other field');
    return { deleted: path };
  }
  if (!TYPES.has(type)) fail(`unknown type ${JSON.stringify(type)}`);
  const t = type as EntryType;
  if (!/^[0-7]{4}$/.test(mode)) fail(`mode ${JSON.stringify(mode)} is not 4 octal digits`);
  const ids = owner.split(":");
  if (ids.length !== 2 || !ids.every((id) => UINT.test(id))) fail(`owner ${JSON.stringify(owner)} is not uid:gid`);
  if (!UINT.test(size)) fail(`size ${JSON.stringify(size)} is not a number`);
  const entry: Entry = { path, type: t, mode: parseInt(mode, 8), uid: Number(ids[0]), gid: Number(ids[1]), size: Number(size) };
  if (isDevice(t)) {
    const dev = /^(0|[1-9][0-9]*),(0|[1-9][0-9]*)$/.exec(hash);
    if (!dev) fail(`device numbers ${JSON.stringify(hash)} are not major,minor`);
    entry.devMajor = Number(dev[1]);
    entry.devMinor = Number(dev[2]);
  } else if (hash !== "-") {
    if (!HASH.test(hash)) fail(`hash ${JSON.stringify(hash)} is not sha256 hex`);
    entry.hash = hash;
  }
  // For link types the field is always a target, so a target spelled "-" stays unambiguous.
  if (hasLink(t)) entry.linkTarget = unescapePath(link);
  else if (link !== "-") fail(`a ${t} has no link target`);
  for (const field of xattrFields) {
    // Hex values never contain "=", so the last one separates name and value.
    const eq = field.lastIndexOf("=");
    const value = field.slice(eq + 1);
    if (eq <= 0 || !/^([0-9a-f]{2})*$/.test(value)) fail(`extended attribute ${JSON.stringify(field)} is not NAME=HEX`);
    (entry.xattrs ??= {})[unescapePath(field.slice(0, eq)).toString()] = Buffer.from(value, "hex");
  }
  return { entry };
}

/**
 * Reads list text back into entries and deletions, exactly inverting formatList. Throws
 * FormatError naming the line for anything formatList would not write, including lines
 * out of order, since a misordered list would diff wrongly.
 */
export function parseList(text: string): { entries: Entry[]; deletions: Buffer[] } {
  const entries: Entry[] = [];
  const deletions: Buffer[] = [];
  if (text === "") return { entries, deletions };
  if (!text.endsWith("\n")) throw new FormatError("file list does not end with a newline (truncated?)");
  const lines = text.slice(0, -1).split("\n");
  let previous: Buffer | undefined;
  lines.forEach((line, i) => {
    let parsed;
    try {
      parsed = parseLine(line);
      const path = parsed.entry?.path ?? parsed.deleted!;
      if (previous && comparePaths(previous, path) >= 0) throw new FormatError(`"${escapePath(path)}" is out of order or repeated`);
      previous = path;
    } catch (err) {
      throw err instanceof FormatError ? new FormatError(`file list line ${i + 1}: ${err.message}`) : err;
    }
    if (parsed.entry) entries.push(parsed.entry);
    else deletions.push(parsed.deleted!);
  });
  return { entries, deletions };
}

function sameBuffer(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

function sameXattrs(a: Entry["xattrs"], b: Entry["xattrs"]): boolean {
  const ka = Object.keys(a ?? {}).sort();
  const kb = Object.keys(b ?? {}).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a![k].equals(b![k]));
}

/** True when two entries for the same path would give the same list line. */
export function sameEntry(a: Entry, b: Entry): boolean {
  return a.type === b.type && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.size === b.size &&
    a.hash === b.hash && sameBuffer(a.linkTarget, b.linkTarget) &&
    a.devMajor === b.devMajor && a.devMinor === b.devMinor && sameXattrs(a.xattrs, b.xattrs);
}

/**
 * What turns `base` into `current`: `changed` holds entries that are new or differ in any
 * listed field; `deleted` holds base paths missing from current, but only the top-most of
 * a deleted subtree, since deleting a directory deletes its children (one whiteout, not
 * thousands). Both come back in comparePaths order.
 */
export function diffList(base: Entry[], current: Entry[]): { changed: Entry[]; deleted: Buffer[] } {
  // latin1 maps each byte to one character, so it is a lossless key for raw paths.
  const key = (p: Buffer) => p.toString("latin1");
  const before = new Map(base.map((e) => [key(e.path), e]));
  const now = new Set(current.map((e) => key(e.path)));
  const changed = current.filter((e) => {
    const old = before.get(key(e.path));
    return !old || !sameEntry(old, e);
  });
  const gone = new Set([...before.keys()].filter((k) => !now.has(k)));
  const deleted = [...gone]
    .filter((k) => {
      for (let i = k.lastIndexOf("/"); i > 0; i = k.lastIndexOf("/", i - 1)) {
        if (gone.has(k.slice(0, i))) return false;
      }
      return true;
    })
    .map((k) => Buffer.from(k, "latin1"));
  changed.sort((a, b) => comparePaths(a.path, b.path));
  deleted.sort(comparePaths);
  return { changed, deleted };
}

/**
 * parseLine for lines crecipe wrote itself a moment ago (tree manifests): the same
 * result for any line formatLine writes, without re-validating each field. Lines from
 * elsewhere go through parseLine.
 */
export function parseOwnLine(line: string): Entry {
  const fields = line.split(" ");
  const [pathField, type, mode, owner, size, hash, link] = fields;
  const colon = owner.indexOf(":");
  const entry: Entry = {
    path: unescapePath(pathField),
    type: type as EntryType,
    mode: parseInt(mode, 8),
    uid: Number(owner.slice(0, colon)),
    gid: Number(owner.slice(colon + 1)),
    size: Number(size),
  };
  if (type === "char" || type === "block") {
    const comma = hash.indexOf(",");
    entry.devMajor = Number(hash.slice(0, comma));
    entry.devMinor = Number(hash.slice(comma + 1));
  } else if (hash !== "-") entry.hash = hash;
  if (type === "symlink" || type === "hardlink") entry.linkTarget = unescapePath(link);
  if (fields.length > 7) return parseLine(line, { allowWhiteoutNames: true }).entry!; // extended attributes: the careful way
  return entry;
}
