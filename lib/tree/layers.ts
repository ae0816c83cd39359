/**
 * Stacked layer directories read as one tree, with overlayfs's rules: the topmost layer
 * that has a name wins; a directory merges with the directories below it; anything
 * else (a file, a symlink) hides what is below; a whiteout (char device 0:0) deletes the
 * name from the layers below. This is how a snapshot fs (an upper directory over its
 * base) looks to a chroot, a layer or an initrd, without mounting anything.
 */
import * as fs from "node:fs";
import { sortedItems } from "../engine/walk.ts";

export const isWhiteout = (st: fs.Stats) => st.isCharacterDevice() && st.rdev === 0;

const SLASH = Buffer.from("/");

export interface Found {
  /** Index of the layer that holds it (0 is the top). */
  layer: number;
  host: Buffer;
  st: fs.Stats;
}

const hostOf = (dir: string, rel: Buffer) => rel.length ? Buffer.concat([Buffer.from(dir), SLASH, rel]) : Buffer.from(dir);

function split(rel: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= rel.length; i++) {
    if (i === rel.length || rel[i] === 0x2f) {
      if (i > start) parts.push(rel.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

/**
 * Where `rel` is in the merged view of `dirs` (top first), or undefined. Follows no
 * symlinks: a symlink is an entry like any other.
 */
export function locate(dirs: readonly string[], rel: Buffer): Found | undefined {
  const parts = split(rel);
  let candidates = dirs.map((_, i) => i);
  let prefix: Buffer = Buffer.alloc(0);
  let found: Found | undefined;
  for (let c = 0; c < parts.length; c++) {
    prefix = c === 0 ? parts[0] : Buffer.concat([prefix, SLASH, parts[c]]);
    found = undefined;
    const merging: number[] = [];
    for (const i of candidates) {
      const host = hostOf(dirs[i], prefix);
      const st = fs.lstatSync(host, { throwIfNoEntry: false });
      if (!st) continue;
      if (isWhiteout(st)) break;
      if (!found) found = { layer: i, host, st };
      if (!st.isDirectory()) break; // hides the layers below (when it is the topmost), or ends a merge
      merging.push(i);
    }
    if (!found) return undefined;
    if (c < parts.length - 1 && !found.st.isDirectory()) return undefined;
    candidates = merging;
  }
  return found ?? (dirs.length ? { layer: 0, host: Buffer.from(dirs[0]), st: fs.lstatSync(dirs[0]) } : undefined);
}

/** The layers in which `rel` is a directory that takes part in the merged directory (top first). */
function mergedDirLayers(dirs: readonly string[], rel: Buffer): number[] {
  if (!rel.length) return dirs.map((_, i) => i);
  const parts = split(rel);
  let candidates = dirs.map((_, i) => i);
  let prefix: Buffer = Buffer.alloc(0);
  for (let c = 0; c < parts.length; c++) {
    prefix = c === 0 ? parts[0] : Buffer.concat([prefix, SLASH, parts[c]]);
    const merging: number[] = [];
    for (const i of candidates) {
      const st = fs.lstatSync(hostOf(dirs[i], prefix), { throwIfNoEntry: false });
      if (!st) continue;
      if (!st.isDirectory()) break;
      merging.push(i);
    }
    candidates = merging;
  }
  return candidates;
}

export interface MergedChild {
  name: Buffer;
  layer: number;
  host: Buffer;
  st: fs.Stats;
  /** Layers whose directory of this name merges into it (directories only). */
  below: number[];
}

/** The merged listing of directory `rel`, given the layers whose directory takes part. */
function listMerged(dirs: readonly string[], rel: Buffer, layers: number[]): Map<string, MergedChild> {
  const children = new Map<string, MergedChild>();
  const closed = new Set<string>(); // names a higher layer ended (whiteout or non-directory)
  for (const i of layers) {
    const base = hostOf(dirs[i], rel);
    let names: Buffer[];
    try {
      names = fs.readdirSync(base, { encoding: "buffer" });
    } catch {
      continue;
    }
    for (const name of names) {
      const key = name.toString("latin1");
      if (closed.has(key)) continue;
      const host = Buffer.concat([base, SLASH, name]);
      const st = fs.lstatSync(host);
      const seen = children.get(key);
      if (isWhiteout(st)) {
        closed.add(key);
        continue;
      }
      if (!seen) {
        children.set(key, { name, layer: i, host, st, below: st.isDirectory() ? [i] : [] });
        if (!st.isDirectory()) closed.add(key);
      } else if (st.isDirectory()) {
        seen.below.push(i);
      } else {
        closed.add(key);
      }
    }
  }
  return children;
}

/** The merged listing of one directory (names and where each comes from). */
export function readMergedDir(dirs: readonly string[], rel: Buffer): MergedChild[] {
  return [...listMerged(dirs, rel, mergedDirLayers(dirs, rel)).values()];
}

export type MergedVisit = (rel: Buffer, found: Found) => void;

/** Every entry of the merged view under `start` (default: all), in bytewise path order. */
export function walkMerged(dirs: readonly string[], visit: MergedVisit, start: Buffer = Buffer.alloc(0)): void {
  const walk = (rel: Buffer, layers: number[]) => {
    const children = listMerged(dirs, rel, layers);
    const items = sortedItems([...children.values()].map((c) => c.name), (name) => children.get(name.toString("latin1"))!.st.isDirectory());
    for (const item of items) {
      const child = children.get(item.name.toString("latin1"))!;
      const childRel = rel.length ? Buffer.concat([rel, SLASH, item.name]) : item.name;
      if (item.contents) walk(childRel, child.below);
      else visit(childRel, { layer: child.layer, host: child.host, st: child.st });
    }
  };
  walk(start, mergedDirLayers(dirs, start));
}
