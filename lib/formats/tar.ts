/**
 * A deterministic ustar/pax tar writer. Output depends only on the entry and the mtime
 * passed in, so the same tree always gives the same bytes (and the same layer digest).
 * Headers are laid out as GNU tar writes them with --numeric-owner, so GNU tar serves as
 * the reference in tests: names that fit ustar's prefix/name split use it (like
 * --format=ustar), anything else gets a pax header like --format=posix with
 * --pax-option=exthdr.name=PaxHeaders/%f,delete=atime,delete=ctime.
 */
import { isUtf8 } from "node:buffer";
import { type Entry, FormatError, baseName, checkPath, escapePath, isWhiteoutName } from "./entry.ts";

const BLOCK = 512;
/** Largest values the octal header fields hold: 7 digits for ids, 11 for size and time. */
const MAX_ID = 0o7777777;
const MAX_SIZE = 0o77777777777;

const TYPEFLAG: Record<Entry["type"], string> = {
  file: "0",
  whiteout: "0", // a layer whiteout is an empty regular file named .wh.NAME
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

/** The fields a writer and a reader of a ustar header block share. */
interface UstarFields {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
}

/** One 512-byte ustar header; fields are written in GNU tar's style (digits then NUL). */
interface Header extends UstarFields {
  prefix?: Buffer;
  linkname?: Buffer;
  /** Devices always, other real entries as 0; GNU leaves them empty on pax headers. */
  dev?: [number, number];
}

/** `value` in octal, zero-padded to width - 1 digits, then the NUL already there; returns the digits' byte sum. */
function octal(buf: Buffer, offset: number, width: number, value: number): number {
  let sum = 0;
  let i = offset + width - 2;
  for (let v = value; i >= offset; i--) {
    const digit = 0x30 + (v % 8);
    buf[i] = digit;
    sum += digit;
    v = Math.floor(v / 8);
  }
  return sum;
}

/** The byte sum of `bytes` copied into `buf` at `offset`. */
function put(buf: Buffer, offset: number, bytes: Buffer | undefined): number {
  if (!bytes) return 0;
  bytes.copy(buf, offset);
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) sum += bytes[i];
  return sum;
}

/** The parts of every header that never change: the magic and version. */
const TEMPLATE = (() => {
  const buf = Buffer.alloc(BLOCK);
  buf.write("ustar\u000000", 257, "latin1");
  return buf;
})();
/** The template's byte sum with the checksum field as eight spaces. */
const TEMPLATE_SUM = TEMPLATE.reduce((sum, byte) => sum + byte, 0) + 8 * 0x20;

function encodeHeader(h: Header, buf: Buffer = Buffer.allocUnsafe(BLOCK), at = 0): Buffer {
  TEMPLATE.copy(buf, at);
  // The checksum is the sum of the header's bytes with its own field as spaces: the
  // template's, plus what each field adds (summed as written, not by reading 512 bytes back).
  let sum = TEMPLATE_SUM + put(buf, at, h.name);
  sum += octal(buf, at + 100, 8, h.mode);
  sum += octal(buf, at + 108, 8, h.uid);
  sum += octal(buf, at + 116, 8, h.gid);
  sum += octal(buf, at + 124, 12, h.size);
  sum += octal(buf, at + 136, 12, h.mtime);
  buf[at + 156] = h.typeflag.charCodeAt(0);
  sum += buf[at + 156];
  sum += put(buf, at + 157, h.linkname);
  // uname/gname (265, 297) stay empty: owners are numeric only, like --numeric-owner.
  if (h.dev) {
    sum += octal(buf, at + 329, 8, h.dev[0]);
    sum += octal(buf, at + 337, 8, h.dev[1]);
  }
  sum += put(buf, at + 345, h.prefix);
  // Stored as 6 digits, NUL, space.
  octal(buf, at + 148, 7, sum);
  buf[at + 154] = 0;
  buf[at + 155] = 0x20;
  return buf;
}

const NO_PREFIX = Buffer.alloc(0);

/**
 * Splits a name into ustar's prefix (155 bytes) and name (100 bytes) at a "/", or returns
 * undefined when no split fits. The last usable slash keeps the name part shortest.
 */
function splitName(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (name.length <= 100) return { prefix: NO_PREFIX, name };
  // A slash at the very end (directories) cannot split: the name part would be empty.
  for (let i = Math.min(155, name.length - 2); i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    return name.length - i - 1 <= 100 ? { prefix: name.subarray(0, i), name: name.subarray(i + 1) } : undefined;
  }
  return undefined;
}

/** One pax record, "<len> <key>=<value>\n", where len counts the whole record including itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const base = key.length + value.length + 3; // space, "=", newline
  let len = base;
  while (len !== base + String(len).length) len = base + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`, "latin1"), value, Buffer.from("\n")]);
}

function checkNumber(what: string, value: number | undefined, max: number, path: Buffer): number {
  if (value === undefined) return 0;
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new FormatError(`${what} ${value} of "${escapePath(path)}" cannot be stored in a tar header`);
  }
  return value;
}

/**
 * The header block(s) for one entry: a pax extended header ("x") first when ustar cannot
 * hold the entry faithfully, then the ustar header. Content and padding are the caller's
 * (see tarPadding). `mtime` (seconds) is written for every entry, so archives do not
 * depend on when files were touched. Throws FormatError for paths that could escape the
 * extraction root; other path rules are the caller's, since whiteouts need ".wh." names.
 * A "hardlink" must come after its target in the archive: extractors link to a file
 * they have already written.
 */
export function tarHeader(entry: Entry, mtime: number): Buffer {
  const { header, records } = prepare(entry, mtime);
  return records.length === 0 ? encodeHeader(header) : withPax(entry.path, header, records, mtime);
}

/**
 * tarHeader written into `out` at `at`, without a buffer of its own (a packer's batch
 * holds many): the bytes written, or -1 when they do not fit.
 */
export function tarHeaderInto(entry: Entry, mtime: number, out: Buffer, at: number): number {
  const { header, records } = prepare(entry, mtime);
  if (records.length === 0) {
    if (at + BLOCK > out.length) return -1;
    encodeHeader(header, out, at);
    return BLOCK;
  }
  const full = withPax(entry.path, header, records, mtime);
  if (at + full.length > out.length) return -1;
  full.copy(out, at);
  return full.length;
}

/** tarHeader's checks, and the fields and pax records it writes. */
function prepare(entry: Entry, mtime: number): { header: Header; records: Buffer[] } {
  const { path, type } = entry;
  checkPath(path, { allowWhiteoutNames: true });
  if (type === "whiteout" && !isWhiteoutName(baseName(path))) {
    throw new FormatError(`whiteout "${escapePath(path)}" must be named .wh.NAME by the caller`);
  }
  if (!Object.hasOwn(TYPEFLAG, type)) throw new FormatError(`unknown entry type ${JSON.stringify(type)} for "${escapePath(path)}"`);
  checkNumber("mtime", mtime, MAX_SIZE, path);
  const mode = checkNumber("mode", entry.mode, 0o7777, path);
  const size = type === "file" ? checkNumber("size", entry.size, Number.MAX_SAFE_INTEGER, path) : 0;
  const uid = checkNumber("uid", entry.uid, Number.MAX_SAFE_INTEGER, path);
  const gid = checkNumber("gid", entry.gid, Number.MAX_SAFE_INTEGER, path);
  const isDevice = type === "char" || type === "block";
  const dev: [number, number] = isDevice
    ? [checkNumber("device major", entry.devMajor, MAX_ID, path), checkNumber("device minor", entry.devMinor, MAX_ID, path)]
    : [0, 0];

  let link: Buffer | undefined;
  if (type === "symlink" || type === "hardlink") {
    link = entry.linkTarget;
    if (!link?.length) throw new FormatError(`${type} "${escapePath(path)}" has no link target`);
    if (type === "hardlink") checkPath(link, { allowWhiteoutNames: true });
    else if (link.includes(0)) throw new FormatError(`symlink "${escapePath(path)}" target contains a NUL byte`);
  }

  // Directories carry a trailing slash, as every tar does, so old readers see a directory.
  const name = type === "dir" ? Buffer.concat([path, Buffer.from("/")]) : path;
  const split = splitName(name);
  const records: Buffer[] = [];
  const needsPath = !split;
  const needsLink = link !== undefined && link.length > 100;
  // pax values are UTF-8 unless hdrcharset says otherwise; raw bytes must say so up front.
  if ((needsPath && !isUtf8(name)) || (needsLink && !isUtf8(link!))) {
    records.push(paxRecord("hdrcharset", Buffer.from("BINARY")));
  }
  if (needsPath) records.push(paxRecord("path", name));
  if (needsLink) records.push(paxRecord("linkpath", link!));
  if (uid > MAX_ID) records.push(paxRecord("uid", Buffer.from(String(uid))));
  if (gid > MAX_ID) records.push(paxRecord("gid", Buffer.from(String(gid))));
  if (size > MAX_SIZE) records.push(paxRecord("size", Buffer.from(String(size))));
  for (const key of Object.keys(entry.xattrs ?? {}).sort()) {
    if (!key || key.includes("=") || key.includes("\0")) {
      throw new FormatError(`xattr name ${JSON.stringify(key)} of "${escapePath(path)}" cannot be stored in pax`);
    }
    records.push(paxRecord(`SCHILY.xattr.${key}`, entry.xattrs![key]));
  }

  const header: Header = {
    // When pax holds the real path, ustar gets its first 100 bytes, as GNU tar does.
    name: split ? split.name : name.subarray(0, 100),
    prefix: split?.prefix,
    mode,
    // Values too large for ustar are clamped, not zeroed: a reader that ignores pax then
    // sees an odd owner instead of root.
    uid: Math.min(uid, MAX_ID),
    gid: Math.min(gid, MAX_ID),
    size: Math.min(size, MAX_SIZE),
    mtime,
    typeflag: TYPEFLAG[type],
    linkname: link?.subarray(0, 100),
    dev,
  };
  return { header, records };
}

/** A pax extended header holding `records`, then `header`. */
function withPax(path: Buffer, header: Header, records: Buffer[], mtime: number): Buffer {
  const body = Buffer.concat(records);
  const pax = encodeHeader({
    // A fixed, pid-free name; readers ignore it, but it must not vary between runs.
    name: Buffer.concat([Buffer.from("PaxHeaders/"), baseName(path)]).subarray(0, 100),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime,
    typeflag: "x",
  });
  return Buffer.concat([pax, body, tarPadding(body.length), encodeHeader(header)]);
}

/** How many bytes `size` bytes of content take in an archive: up to the next 512-byte block boundary. */
export function paddedLength(size: number): number {
  return size + ((BLOCK - (size % BLOCK)) % BLOCK);
}

/** Zero bytes that bring `size` bytes of content up to the next 512-byte block boundary. */
export function tarPadding(size: number): Buffer {
  return ZEROS.subarray(0, paddedLength(size) - size);
}

const ZEROS = Buffer.alloc(BLOCK);

/** The end-of-archive marker: two zero blocks. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

/** One header block as a reader sees it (before pax or GNU long-name records are applied). */
export interface TarHeaderFields extends UstarFields {
  linkname: Buffer;
  devMajor: number;
  devMinor: number;
}

/** A NUL-terminated field's bytes. */
function field(block: Buffer, offset: number, width: number): Buffer {
  const raw = block.subarray(offset, offset + width);
  const end = raw.indexOf(0);
  return end < 0 ? raw : raw.subarray(0, end);
}

/** A numeric field: octal digits (spaces and NULs around them), or GNU's base-256 for large values. */
function number(block: Buffer, offset: number, width: number, what: string): number {
  const raw = block.subarray(offset, offset + width);
  if (raw[0] & 0x80) {
    let value = raw[0] & 0x7f;
    for (let i = 1; i < raw.length; i++) value = value * 256 + raw[i];
    if (!Number.isSafeInteger(value)) throw new FormatError(`tar header: ${what} does not fit in a number`);
    return value;
  }
  const text = raw.toString("latin1").replace(/[\0 ]+$/, "").replace(/^[\0 ]+/, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new FormatError(`tar header: ${what} ${JSON.stringify(text)} is not an octal number`);
  return parseInt(text, 8);
}

/**
 * Parse one 512-byte header block (ustar, GNU, or the pax/GNU extension headers that
 * precede an entry). undefined for an all-zero block (the end of the archive). Throws
 * FormatError when the checksum does not match: the archive is damaged.
 */
export function parseTarHeader(block: Buffer): TarHeaderFields | undefined {
  if (block.length !== BLOCK) throw new FormatError(`tar header: ${block.length} bytes, not ${BLOCK} (the archive is truncated)`);
  let sum = 0;
  let zero = true;
  for (let i = 0; i < BLOCK; i++) {
    if (block[i]) zero = false;
    sum += i >= 148 && i < 156 ? 0x20 : block[i];
  }
  if (zero) return undefined;
  if (number(block, 148, 8, "checksum") !== sum) throw new FormatError("tar header: checksum mismatch (the archive is damaged)");
  const ustar = block.subarray(257, 262).toString("latin1") === "ustar";
  const prefix = ustar ? field(block, 345, 155) : Buffer.alloc(0);
  const name = field(block, 0, 100);
  return {
    name: prefix.length ? Buffer.concat([prefix, Buffer.from("/"), name]) : name,
    mode: number(block, 100, 8, "mode") & 0o7777,
    uid: number(block, 108, 8, "uid"),
    gid: number(block, 116, 8, "gid"),
    size: number(block, 124, 12, "size"),
    mtime: number(block, 136, 12, "mtime"),
    typeflag: String.fromCharCode(block[156] || 0x30),
    linkname: field(block, 157, 100),
    devMajor: number(block, 329, 8, "device major"),
    devMinor: number(block, 337, 8, "device minor"),
  };
}

/** The records of a pax extended header, values kept as bytes (xattrs are binary). */
export function parsePaxRecords(body: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  for (let at = 0; at < body.length;) {
    const space = body.indexOf(0x20, at);
    const length = Number(body.toString("latin1", at, space));
    if (space < 0 || !Number.isInteger(length) || length <= 0 || at + length > body.length || body[at + length - 1] !== 0x0a) {
      if (body.subarray(at).every((b) => b === 0)) break; // padding
      throw new FormatError("pax header: a record is malformed");
    }
    const record = body.subarray(space + 1, at + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw new FormatError("pax header: a record has no '='");
    records.set(record.toString("utf8", 0, eq), record.subarray(eq + 1));
    at += length;
  }
  return records;
}
