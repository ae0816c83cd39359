/**
 * Scan a built tree into sorted entries (the cookbook's fileids.py): type, mode, owner,
 * size, content hash, hard-link identity. Owners come from recorded metadata, not from
 * the disk, so a build by an unprivileged user scans exactly like a build by root.
 */
import { createHash } from "node:crypto";
import { hashFile, walkTree } from "../engine/hash.ts";
import * as fs from "node:fs";
import { comparePaths, type Entry, type EntryType } from "../formats/entry.ts";
import { escapePath } from "../formats/filelist.ts";
import { CrecipeError } from "../engine/errors.ts";

/** What chown/mknod recorded, keyed by escaped path (formats/filelist's escapePath). */
export interface Ownership {
  owners: Record<string, [number, number]>;
  devices: Record<string, { type: "char" | "block"; major: number; minor: number; mode: number }>;
}

export const emptyOwnership = (): Ownership => ({ owners: {}, devices: {} });

/** Every path under `root` (the root itself excluded), sorted bytewise, with hashes. */
export function scanTree(root: string, meta: Ownership = emptyOwnership(), options: { diskOwners?: boolean } = {}): Entry[] {
  const found: { entry: Entry; full: Buffer; inode?: string; st?: fs.Stats }[] = [];
  walkTree(root, (path, full, st) => {
    const key = escapePath(path);
    const [uid, gid] = meta.owners[key] ?? (options.diskOwners ? [st.uid, st.gid] : [0, 0]);
    const entry: Entry = { path, type: typeOf(st, path), mode: st.mode & 0o7777, uid, gid, size: 0 };
    const device = meta.devices[key];
    if (device) {
      Object.assign(entry, { type: device.type, mode: device.mode, devMajor: device.major, devMinor: device.minor });
    } else if (entry.type === "file") {
      entry.size = st.size; // hashed below, once the link groups are known
      return void found.push({ entry, full, inode: st.nlink > 1 ? `${st.dev}:${st.ino}` : undefined, st });
    } else if (entry.type === "symlink") {
      entry.linkTarget = fs.readlinkSync(full, { encoding: "buffer" });
      entry.hash = createHash("sha256").update(entry.linkTarget).digest("hex");
    } else if (entry.type === "char" || entry.type === "block") {
      entry.devMajor = Math.floor(st.rdev / 256) & 0xfff;
      entry.devMinor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
    }
    found.push({ entry, full });
  });
  // Bytewise order is the order of lists and archives; a link group's first member in
  // that order carries the data, so a hard link never comes before its target.
  found.sort((a, b) => comparePaths(a.entry.path, b.entry.path));
  const firstOfInode = new Map<string, Buffer>();
  for (const { entry, full, inode, st } of found) {
    if (entry.type !== "file") continue;
    const first = inode ? firstOfInode.get(inode) : undefined;
    if (first) {
      Object.assign(entry, { type: "hardlink", linkTarget: first, size: 0 });
      continue;
    }
    if (inode) firstOfInode.set(inode, entry.path);
    entry.hash = hashFile(full, st);
  }
  return found.map((f) => f.entry);
}

function typeOf(st: fs.Stats, path: Buffer): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  throw new CrecipeError(`${escapePath(path)} is a socket: sockets cannot go into layers or initrds`, { fix: "remove it in the fs builder" });
}
