/**
 * Tree manifests: when a target's output is a directory, the engine walks it once at
 * commit, hashing each file, and keeps the result beside the state, in two files of one
 * line per entry, in bytewise path order: NAME.list has the file-list lines
 * (formats/filelist.ts: type, mode, size, sha256, link) — for a tree without recorded
 * owners it is already the tree's `files` list, copied, not made again — and NAME.stat
 * what stat said of each (inode, mtime, size, mode).
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
import { formatLine, parseOwnLine } from "../formats/filelist.ts";
import { CrecipeError } from "./errors.ts";
import { hashFile, sha256Hex } from "./hash.ts";
import { breathe, OutputFile, readLines, readlinkBytes } from "./io.ts";
import { collectGarbage } from "./heap.ts";
import { LinkGroups, walkSorted, walkSortedAsync } from "./walk.ts";

const HEADER = "crecipe-manifest 2";

/** An entry of a manifest with what stat said of it when the manifest was written. */
export interface ManifestEntry {
  entry: Entry;
  /** `ino:mtimeMs:size:mode`: unchanged means the entry was not touched. */
  sig: string;
}

/**
 * What stat says of an entry, to tell whether it was touched. Not ctime: a tree made of
 * hard links (`cp -al`) sees its ctimes change whenever another name of the same inode
 * comes or goes, while its content stays.
 */
export const statKey = (st: fs.Stats) => `${st.ino}:${st.mtimeMs}:${st.size}:${st.mode}`;

/**
 * The four numbers a statKey joins, in its order (inode, mtime in ms, size, mode), for a
 * thread that compares them with a stat field by field; NaN (equal to nothing) where the
 * key is not one statKey made.
 */
export function statFields(key: string): [number, number, number, number] {
  const fields = key.split(":");
  const at = (k: number) => (fields.length === 4 ? Number(fields[k]) : NaN);
  return [at(0), at(1), at(2), at(3)];
}

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
    entry.linkTarget = readlinkBytes(full);
    entry.hash = createHash("sha256").update(entry.linkTarget).digest("hex");
  } else if (type === "char" || type === "block") Object.assign(entry, deviceNumbers(st.rdev));
  return entry;
}


/**
 * Complete a file's entry as the list has it: a later path of a hard link group becomes
 * a link to the group's first path (`groups`: walk.ts's LinkGroups); any other file gets its
 * content hash (`cache`: through the in-process hash cache). True when it was hashed.
 */
function linkOrHash(entry: Entry, rel: Buffer, full: Buffer, st: fs.Stats, groups: LinkGroups, cache: boolean): boolean {
  const first = groups.first(rel, st);
  if (first) {
    Object.assign(entry, { type: "hardlink", linkTarget: first, size: 0 });
    return false;
  }
  entry.hash = hashFile(full, st, cache);
  return true;
}

/**
 * Walk `dir`, hash every file, write the manifest to `base`.list and `base`.stat.
 * Returns the tree's content hash ("tree:" + sha256 of the list). Memory follows the
 * number of hard link groups, not the tree's size.
 */
export async function writeManifest(dir: string, base: string): Promise<string> {
  const list = new OutputFile(`${base}.list`);
  const stat = new OutputFile(`${base}.stat.tmp`);
  let walked: Walked;
  try {
    walked = await walkInto(dir, list, stat);
  } catch (error) {
    list.abandon();
    stat.abandon();
    throw error;
  }
  const { plain, files, bytes, entries } = walked;
  const hash = list.close();
  stat.close();
  // The walk's garbage (its hard link groups among it, dead once walkInto returned).
  if (entries >= BIG_WALK) collectGarbage();
  // The header goes first, and says whether the list can stand as a file list as it is.
  const out = fs.openSync(`${base}.stat`, "w");
  const from = fs.openSync(`${base}.stat.tmp`, "r");
  try {
    fs.writeSync(out, `${HEADER} ${plain ? "plain" : "checked"} ${files} ${bytes}\n`);
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = fs.readSync(from, chunk, 0, chunk.length, null)) > 0;) fs.writeSync(out, chunk, 0, n);
  } finally {
    fs.closeSync(from);
    fs.closeSync(out);
  }
  fs.rmSync(`${base}.stat.tmp`);
  return `tree:${hash}`;
}

interface Walked {
  plain: boolean;
  files: number;
  bytes: number;
  entries: number;
}

/** writeManifest's walk: each entry's line into `list`, its stat into `stat`. */
async function walkInto(dir: string, list: OutputFile, stat: OutputFile): Promise<Walked> {
  const groups = new LinkGroups();
  const walked = { plain: true, files: 0, bytes: 0, entries: 0 };
  await walkSortedAsync(dir, (rel, full, st) => {
    const entry = diskEntry(rel, full, st);
    // A file just built: no later reader in this process would hit a hash cache.
    if (entry.type === "file" && linkOrHash(entry, rel, full, st, groups, false)) {
      walked.files++;
      walked.bytes += entry.size;
    }
    if (walked.plain && (entry.type === "whiteout" || needsCheck(rel))) walked.plain = false;
    list.writeText(formatLine(entry));
    stat.writeText(statKey(st) + "\n");
    walked.entries++;
  }, breathe);
  return walked;
}

/** Entries from which a walk's garbage is worth a collection where it ends (engine/heap.ts). */
const BIG_WALK = 20_000;

/** A name a file list must refuse (a component starting with ".wh.", reserved for whiteouts): the slow path says so. */
function needsCheck(rel: Buffer): boolean {
  for (let i = rel.indexOf(WH); i >= 0; i = rel.indexOf(WH, i + 1)) if (i === 0 || rel[i - 1] === 0x2f) return true;
  return false;
}
const WH = Buffer.from(".wh.");

/**
 * What a manifest's header says: whether its list may be used as a file list as it is
 * (no whiteouts, no .wh. names), and how many files with how many bytes it lists.
 */
export function manifestSummary(base: string): { plain: boolean; files: number; bytes: number } {
  const fd = fs.openSync(`${base}.stat`, "r");
  try {
    const head = Buffer.alloc(128);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    const line = head.toString("latin1", 0, n).split("\n")[0].split(" ");
    return { plain: line[2] === "plain", files: Number(line[3]) || 0, bytes: Number(line[4]) || 0 };
  } finally {
    fs.closeSync(fd);
  }
}

/** The entries of a manifest, streamed in path order. */
export function* readManifest(base: string): Generator<ManifestEntry> {
  const sigs = readLines(`${base}.stat`);
  try {
    const header = sigs.next().value;
    if (!header?.startsWith(HEADER + " ")) {
      throw new CrecipeError(`${base}.stat is not a crecipe manifest (or from another version)`, { fix: "rebuild the target" });
    }
    for (const line of readLines(`${base}.list`)) {
      const sig = sigs.next().value;
      if (sig === undefined) throw new CrecipeError(`${base}: the manifest's two halves disagree`, { fix: "rebuild the target" });
      yield { entry: parseOwnLine(line), sig };
    }
  } finally {
    sigs.return(undefined); // closes the file, also when the reader stops early
  }
}

/**
 * Compare a tree on disk with its manifest: every path, type, mode and size, and the
 * content of every file whose stat changed. Returns the first difference, if any, and
 * the entries whose stat changed while their content did not (touched, copied with
 * `cp -a`, saved unchanged by an editor), by their place in the manifest: layers compare
 * each file they read with the manifest's stat, so the caller writes these into it
 * (restateManifest, under the target's lock). Costs a stat per entry, and a read of what
 * changed; writes nothing.
 *
 * `deep` (--check): a file whose stat is as recorded but whose inode changed since the
 * manifest was written (ctime: an edit that put the mtime back) is read too.
 */
export function verifyTree(dir: string, manifestPath: string, deep = false): { difference?: string; restated: Map<number, string> } {
  const expected = readManifest(manifestPath);
  const since = deep ? fs.statSync(`${manifestPath}.stat`).mtimeMs : Infinity;
  const restated = new Map<number, string>();
  const groups = new LinkGroups();
  let difference: string | undefined;
  let index = 0;
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
      const at = index++;
      const key = statKey(st);
      if (sig === key && !(st.isFile() && st.ctimeMs > since)) {
        if (st.isFile()) groups.remember(rel, st);
        return;
      }
      const now = diskEntry(rel, full, st);
      if (now.type === "file") linkOrHash(now, rel, full, st, groups, true);
      if (formatLine(now) !== formatLine(entry)) throw ((difference = `${shown} was changed`), stop);
      if (sig !== key) restated.set(at, key);
    });
    const extra = expected.next();
    if (!difference && !extra.done) difference = `${escapePath(extra.value.entry.path)} was removed`;
  } catch (error) {
    if (error !== stop) throw error;
  } finally {
    expected.return(undefined);
  }
  return difference ? { difference, restated: new Map() } : { restated };
}

/**
 * Write `restated` stat keys (by entry, as verifyTree found them) into a manifest's
 * .stat half: streamed through a temp file of this process, renamed over it.
 */
export function restateManifest(manifestPath: string, restated: ReadonlyMap<number, string>): void {
  const temp = `${manifestPath}.stat.${process.pid}.tmp`;
  const out = new OutputFile(temp);
  try {
    let index = -1; // the header comes first
    for (const line of readLines(`${manifestPath}.stat`)) {
      out.writeText((index >= 0 ? restated.get(index) ?? line : line) + "\n");
      index++;
    }
    out.close();
    fs.renameSync(temp, `${manifestPath}.stat`);
  } catch (error) {
    out.abandon();
    fs.rmSync(temp, { force: true });
    throw error;
  }
}

/** A manifest's file name for a target and its content hash: state and manifest pair up. */
export function manifestName(target: string, outHash: string): string {
  return `${target}.${sha256Hex(outHash).slice(0, 16)}`;
}
