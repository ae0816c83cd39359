/**
 * Scan a tree on disk into sorted entries (the cookbook's fileids.py): type, mode, owner,
 * size, content hash, hard-link identity. Builds read manifests instead (engine/
 * manifest.ts); this is for looking at a tree nobody built, such as an unpacked layer.
 */
import * as fs from "node:fs";
import { type Entry, escapePath } from "../formats/entry.ts";
import { hashFile } from "../engine/hash.ts";
import { diskEntry } from "../engine/manifest.ts";
import { LinkGroups, walkSorted } from "../engine/walk.ts";
import { emptyMeta, type TreeMeta } from "./meta.ts";

export { emptyMeta, type TreeMeta };
export type Ownership = TreeMeta;
export const emptyOwnership = emptyMeta;

/**
 * Every path under `root` (the root itself excluded), sorted bytewise, with hashes.
 * Owners come from `meta` (0:0 when absent), or from the disk with `diskOwners`.
 */
export function scanTree(root: string, meta: TreeMeta = emptyMeta(), options: { diskOwners?: boolean } = {}): Entry[] {
  const entries: Entry[] = [];
  const groups = new LinkGroups();
  walkSorted(root, (rel, full, st: fs.Stats) => {
    const key = escapePath(rel);
    const entry = diskEntry(rel, full, st);
    [entry.uid, entry.gid] = meta.owners[key] ?? (options.diskOwners ? [st.uid, st.gid] : [0, 0]);
    const device = meta.devices[key];
    if (device) {
      Object.assign(entry, { type: device.type, mode: device.mode, devMajor: device.major, devMinor: device.minor, size: 0 });
    } else if (entry.type === "file") {
      const first = groups.first(rel, st);
      if (first) Object.assign(entry, { type: "hardlink", linkTarget: first, size: 0 });
      else {
        entry.hash = hashFile(full, st);
      }
    }
    entries.push(entry);
  });
  return entries;
}
