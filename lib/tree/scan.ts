/**
 * Scan a built tree into sorted entries (the cookbook's fileids.py): type, mode, owner,
 * size, content hash, hard-link identity. Owners come from recorded metadata, not from
 * the disk, so a build by an unprivileged user scans exactly like a build by root.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { type Entry, type EntryType } from "../formats/entry.ts";
import { escapePath } from "../formats/filelist.ts";

/** What chown/mknod recorded, keyed by escaped path (formats/filelist's escapePath). */
export interface Ownership {
  owners: Record<string, [number, number]>;
  devices: Record<string, { type: "char" | "block"; major: number; minor: number; mode: number }>;
}

export const emptyOwnership = (): Ownership => ({ owners: {}, devices: {} });

const SLASH = Buffer.from("/");

/** Every path under `root` (the root itself excluded), sorted bytewise, with hashes. */
export function scanTree(root: string, meta: Ownership = emptyOwnership(), options: { diskOwners?: boolean } = {}): Entry[] {
  const entries: Entry[] = [];
  const firstOfInode = new Map<string, Buffer>();
  const chunk = Buffer.allocUnsafe(1 << 20);
  const walk = (rel: Buffer) => {
    const dir = rel.length ? Buffer.concat([Buffer.from(root + "/"), rel]) : Buffer.from(root);
    const names = fs.readdirSync(dir, { encoding: "buffer" }).sort(Buffer.compare);
    for (const name of names) {
      const path = rel.length ? Buffer.concat([rel, SLASH, name]) : name;
      const full = Buffer.concat([Buffer.from(root + "/"), path]);
      const st = fs.lstatSync(full);
      const key = escapePath(path);
      const [uid, gid] = meta.owners[key] ?? (options.diskOwners ? [st.uid, st.gid] : [0, 0]);
      const entry: Entry = { path, type: typeOf(st), mode: st.mode & 0o7777, uid, gid, size: 0 };
      const device = meta.devices[key];
      if (device) {
        Object.assign(entry, { type: device.type, mode: device.mode, devMajor: device.major, devMinor: device.minor });
      } else if (entry.type === "file") {
        const inode = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? firstOfInode.get(inode) : undefined;
        if (first) {
          entry.type = "hardlink";
          entry.linkTarget = first;
        } else {
          if (st.nlink > 1) firstOfInode.set(inode, path);
          entry.size = st.size;
          entry.hash = hashFile(full, chunk);
        }
      } else if (entry.type === "symlink") {
        entry.linkTarget = fs.readlinkSync(full, { encoding: "buffer" });
        entry.hash = createHash("sha256").update(entry.linkTarget).digest("hex");
      } else if (entry.type === "char" || entry.type === "block") {
        entry.devMajor = Math.floor(st.rdev / 256) & 0xfff;
        entry.devMinor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
      }
      entries.push(entry);
      if (entry.type === "dir") walk(path);
    }
  };
  walk(Buffer.alloc(0));
  return entries;
}

function typeOf(st: fs.Stats): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  throw new Error(`unsupported file type (socket?) at ${st.ino}`);
}

function hashFile(file: Buffer, chunk: Buffer): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    for (let n; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0;) h.update(chunk.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}
