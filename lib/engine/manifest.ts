/**
 * Tree manifests: when a target's output is a directory, the engine walks it once at
 * commit, hashing each file, and keeps the result beside the state. One line per entry,
 * in bytewise path order: what stat said (inode, mtime, ctime) then the file-list line
 * (formats/filelist.ts: type, mode, size, sha256, link).
 *
 * The manifest is what makes the rest cost the size of a change: the tree's stamp is the
 * hash of its lines, readers (lists, layers, initrds) take hashes from it instead of
 * reading files again, and a deep check compares the disk with it. Owners are not in it
 * (always 0:0): they are recorded metadata, applied by the tree layer.
 *
 * A character device 0:0 is an overlayfs whiteout (a deletion in a snapshot's upper
 * directory) and is listed as type "whiteout".
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { type Entry, type EntryType, escapePath } from "../formats/entry.ts";
import { formatLine, parseLine } from "../formats/filelist.ts";
import { CrecipeError } from "./errors.ts";
import { hashFile, sha256 } from "./hash.ts";
import { OutputFile, readLines } from "./io.ts";
import { walkSorted } from "./walk.ts";

const HEADER = "crecipe-manifest 1";

/** An entry of a manifest with what stat said of it when the manifest was written. */
export interface ManifestEntry {
  entry: Entry;
  /** `ino:mtimeMs:ctimeMs`: unchanged means the entry was not touched. */
  sig: string;
}

export const statKey = (st: fs.Stats) => `${st.ino}:${st.mtimeMs}:${st.ctimeMs}`;

/** The device numbers of a device node, as Linux's new_encode_dev splits them. */
export function deviceNumbers(rdev: number): { devMajor: number; devMinor: number } {
  return { devMajor: Math.floor(rdev / 256) & 0xfff, devMinor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
}

export function typeOf(st: fs.Stats): EntryType | "socket" {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isCharacterDevice()) return st.rdev === 0 ? "whiteout" : "char";
  if (st.isBlockDevice()) return "block";
  return "socket";
}

/**
 * The entry for one path as found on disk, without its content hash. Hard links are the
 * caller's: a file with more than one link is returned as a file.
 */
export function diskEntry(rel: Buffer, full: Buffer | string, st: fs.Stats): Entry {
  const type = typeOf(st);
  if (type === "socket") {
    throw new CrecipeError(`${escapePath(rel)} is a socket: sockets cannot go into layers, images or initrds`, {
      fix: "remove it in the builder (a socket belongs to a running program, not to a tree)",
    });
  }
  const entry: Entry = { path: rel, type, mode: type === "whiteout" ? 0 : st.mode & 0o7777, uid: 0, gid: 0, size: 0 };
  if (type === "file") entry.size = st.size;
  else if (type === "symlink") {
    entry.linkTarget = fs.readlinkSync(full, { encoding: "buffer" });
    entry.hash = createHash("sha256").update(entry.linkTarget).digest("hex");
  } else if (type === "char" || type === "block") Object.assign(entry, deviceNumbers(st.rdev));
  return entry;
}

/**
 * Walk `dir`, hash every file, write the manifest to `manifestPath`. Returns the tree's
 * content hash ("tree:" + sha256 of the list lines). Memory follows the number of hard
 * link groups, not the tree's size.
 */
export function writeManifest(dir: string, manifestPath: string): string {
  const out = new OutputFile(manifestPath);
  const content = createHash("sha256");
  const groups = new Map<string, Buffer>(); // dev:ino → the first path of a hard link group
  try {
    out.writeText(HEADER + "\n");
    walkSorted(dir, (rel, full, st) => {
      const entry = diskEntry(rel, full, st);
      if (entry.type === "file") {
        const first = st.nlink > 1 ? groups.get(`${st.dev}:${st.ino}`) : undefined;
        if (first) Object.assign(entry, { type: "hardlink", linkTarget: first, size: 0 });
        else {
          if (st.nlink > 1) groups.set(`${st.dev}:${st.ino}`, rel);
          entry.hash = hashFile(full, st);
        }
      }
      const line = formatLine(entry);
      content.update(line, "latin1");
      out.writeText(`${statKey(st)} ${line}`);
    });
  } catch (error) {
    out.abandon();
    throw error;
  }
  out.close();
  return `tree:${content.digest("hex")}`;
}

/** The entries of a manifest, streamed in path order. */
export function* readManifest(manifestPath: string): Generator<ManifestEntry> {
  let first = true;
  for (const line of readLines(manifestPath)) {
    if (first) {
      if (line !== HEADER) throw new CrecipeError(`${manifestPath} is not a crecipe manifest (or from another version)`, { fix: "rebuild the target" });
      first = false;
      continue;
    }
    const space = line.indexOf(" ");
    const parsed = parseLine(line.slice(space + 1), { allowWhiteoutNames: true });
    yield { entry: parsed.entry!, sig: line.slice(0, space) };
  }
}

/** The content hash a manifest stands for (as writeManifest returned it). */
export function manifestHash(manifestPath: string): string {
  const content = createHash("sha256");
  for (const { entry } of readManifest(manifestPath)) content.update(formatLine(entry), "latin1");
  return `tree:${content.digest("hex")}`;
}

/**
 * Compare a tree on disk with its manifest: every path, type, mode and size, and the
 * content of every file whose stat changed. Returns the first difference, or undefined.
 * Costs a stat per entry, and a read of what changed.
 */
export function verifyTree(dir: string, manifestPath: string): string | undefined {
  const expected = readManifest(manifestPath);
  const groups = new Map<string, Buffer>();
  let difference: string | undefined;
  const stop = new Error("stop");
  try {
    walkSorted(dir, (rel, full, st) => {
      const next = expected.next();
      const shown = escapePath(rel);
      if (next.done) throw ((difference = `${shown} was added`), stop);
      const { entry, sig } = next.value;
      const order = Buffer.compare(entry.path, rel);
      if (order < 0) throw ((difference = `${escapePath(entry.path)} was removed`), stop);
      if (order > 0) throw ((difference = `${shown} was added`), stop);
      if (sig === statKey(st)) {
        if (st.nlink > 1 && st.isFile()) groups.set(`${st.dev}:${st.ino}`, rel);
        return;
      }
      const now = diskEntry(rel, full, st);
      if (now.type === "file") {
        const first = st.nlink > 1 ? groups.get(`${st.dev}:${st.ino}`) : undefined;
        if (first) Object.assign(now, { type: "hardlink", linkTarget: first, size: 0 });
        else {
          if (st.nlink > 1) groups.set(`${st.dev}:${st.ino}`, rel);
          now.hash = hashFile(full, st);
        }
      }
      if (formatLine(now) !== formatLine(entry)) throw ((difference = `${shown} was changed`), stop);
    });
    const extra = expected.next();
    if (!difference && !extra.done) difference = `${escapePath(extra.value.entry.path)} was removed`;
  } catch (error) {
    if (error !== stop) throw error;
  }
  return difference;
}

/** A manifest's file name for a target and its content hash: state and manifest pair up. */
export function manifestName(target: string, outHash: string): string {
  return `${target}.${sha256(outHash).slice(0, 16)}.manifest`;
}
