/**
 * The one entry model every format module reads: a file system object described by
 * bytes and numbers only, so tar, cpio and the file list agree on what an entry is.
 */

/** What kind of object an entry is. "whiteout" marks a deletion inside a layer. */
export type EntryType = "file" | "dir" | "symlink" | "hardlink" | "fifo" | "char" | "block" | "whiteout";

/** One file system object, independent of any archive format. */
export interface Entry {
  /** Relative path bytes: no leading "./" or "/", no trailing "/", never "". Any byte but NUL. */
  path: Buffer;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (0..0o7777); the type lives in `type`. */
  mode: number;
  uid: number;
  gid: number;
  /** Content size for files; 0 for everything else, hard links included. */
  size: number;
  /** Symlink target, or for "hardlink" the path of the first entry of the link group. */
  linkTarget?: Buffer;
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes by name, e.g. security.capability. */
  xattrs?: Record<string, Buffer>;
  /** sha256 hex of the content (files) or of linkTarget (symlinks); absent otherwise. */
  hash?: string;
}

/** A path or entry that no archive or list can represent faithfully. */
export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FormatError";
  }
}

/**
 * The single sort order for paths everywhere (lists, archives, diffs): plain bytes.
 * Locale-aware or UTF-16 orders would make output depend on the machine or on decoding.
 */
export function comparePaths(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

const SLASH = 0x2f;
const BACKSLASH = 0x5c;

/**
 * Path bytes as printable ASCII: 0x21..0x7e except `\` stay literal, every other byte
 * becomes `\xNN`. Lossless for any bytes, and never contains a space or newline, so it
 * fits in a space-separated line and in an error message.
 */
export function escapePath(b: Buffer): string {
  let plain = true;
  for (const byte of b) {
    if (byte <= 0x20 || byte >= 0x7f || byte === BACKSLASH) {
      plain = false;
      break;
    }
  }
  if (plain) return b.toString("latin1");
  let out = "";
  for (const byte of b) {
    out += byte > 0x20 && byte < 0x7f && byte !== BACKSLASH
      ? String.fromCharCode(byte)
      : "\\x" + byte.toString(16).padStart(2, "0");
  }
  return out;
}

/** The inverse of escapePath; throws FormatError on anything escapePath would not produce. */
export function unescapePath(s: string): Buffer {
  if (!s.includes("\\") && /^[\x21-\x7e]*$/.test(s)) return Buffer.from(s, "latin1");
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === BACKSLASH) {
      const hex = s.slice(i + 2, i + 4);
      if (s[i + 1] !== "x" || !/^[0-9a-fA-F]{2}$/.test(hex)) {
        throw new FormatError(`bad escape at offset ${i} in ${JSON.stringify(s)}: only \\xNN is allowed`);
      }
      out.push(parseInt(hex, 16));
      i += 3;
    } else if (c > 0x20 && c < 0x7f) {
      out.push(c);
    } else {
      throw new FormatError(`unescaped character at offset ${i} in ${JSON.stringify(s)}`);
    }
  }
  return Buffer.from(out);
}

const WHITEOUT_PREFIX = Buffer.from(".wh.");

/**
 * Throws FormatError unless `path` is a clean relative path: not absolute, no "", "."
 * or ".." component, no NUL. Such paths could escape the root on extraction or have two
 * spellings, which would break sorting and diffs. Components starting with ".wh." are
 * refused too because layer formats reserve them for whiteouts; the tar writer, which
 * writes those names itself, passes `allowWhiteoutNames`.
 */
export function checkPath(path: Buffer, options: { allowWhiteoutNames?: boolean } = {}): void {
  const fail = (why: string) => {
    throw new FormatError(`invalid path "${escapePath(path)}": ${why}`);
  };
  if (path.length === 0) fail("empty");
  if (path[0] === SLASH) fail("absolute");
  if (path.includes(0)) fail("contains a NUL byte");
  // One scan, no component buffers: this runs for every entry of every archive.
  for (let start = 0, i = 0; i <= path.length; i++) {
    if (i < path.length && path[i] !== SLASH) continue;
    const length = i - start;
    if (length === 0) fail('empty component (doubled or trailing "/")');
    if (path[start] === 0x2e && (length === 1 || (length === 2 && path[start + 1] === 0x2e))) {
      fail(length === 1 ? '"." component' : '".." component');
    }
    if (!options.allowWhiteoutNames && length >= 4 && path[start] === 0x2e && path[start + 1] === 0x77 && path[start + 2] === 0x68 && path[start + 3] === 0x2e) {
      fail('component starts with ".wh.", which is reserved for whiteouts');
    }
    start = i + 1;
  }
}

/** The last component of a path. */
export function baseName(path: Buffer): Buffer {
  return path.subarray(path.lastIndexOf(SLASH) + 1);
}

/** The path without its last component; "" for top-level paths. */
export function parentPath(path: Buffer): Buffer {
  const i = path.lastIndexOf(SLASH);
  return i < 0 ? Buffer.alloc(0) : path.subarray(0, i);
}

/** True when `b` starts with the whiteout prefix ".wh.". */
export function isWhiteoutName(b: Buffer): boolean {
  return b.subarray(0, 4).equals(WHITEOUT_PREFIX);
}

/**
 * The opaque marker: a file of this name in directory D of a layer means "D replaces the
 * D of the layers below; none of their children show through" (OCI image-spec layer.md).
 */
export const OPAQUE_MARKER = ".wh..wh..opq";

/**
 * The name under which a layer records a deletion: dir/name → dir/.wh.name. An opaque
 * marker (D/.wh..wh..opq) is already such a name and stays as it is.
 */
export function whiteoutPath(deleted: Buffer): Buffer {
  const dir = deleted.subarray(0, deleted.lastIndexOf(SLASH) + 1);
  const name = baseName(deleted);
  if (name.toString("latin1") === OPAQUE_MARKER) return deleted;
  return Buffer.concat([dir, WHITEOUT_PREFIX, name]);
}
