/**
 * What a layer holds: the entries of a tree that are new or changed against a diffbase,
 * and the paths deleted from it (the cookbook's default.list.do, `comm -13` of two
 * sorted file lists). A directory whose every old child is gone, while the directory
 * stays, becomes one opaque marker instead of a whiteout per child.
 *
 * When the diffbase is the tree's own base (`root.from(base)`), only the snapshot's
 * layers are looked at, plus the few base entries they touch: the cost is the size of
 * the change. Otherwise (or when a touched base file is hard-linked, which makes the
 * rest of its link group change type) both trees are listed in full and compared.
 */
import { OPAQUE_MARKER, parentPath, unescapePath } from "../formats/entry.ts";
import { diffList } from "../formats/filelist.ts";
import { hashFile } from "../engine/hash.ts";
import { diskEntry, readManifest, statKey } from "../engine/manifest.ts";
import { readMergedDir, walkMerged } from "./layers.ts";
import type { TreeEntry, TreeView } from "./view.ts";

export interface Changes {
  /** New or changed entries, in path order. */
  changed: TreeEntry[];
  /** Deleted paths (the top-most of each deleted subtree), in path order: what the list says. */
  deleted: Buffer[];
  /** The same deletions as the layer writes them: a directory emptied whole is one `D/.wh..wh..opq`. */
  whiteouts: Buffer[];
}

/** The changes that turn `base` into `tree`. */
export function changes(tree: TreeView, base: TreeView): Changes {
  const upper = tree.layers.length - base.layers.length;
  const stacked = upper >= 0 && base.layers.every((l, i) => l.dir === tree.layers[upper + i].dir && l.stamp === tree.layers[upper + i].stamp);
  return (stacked && snapshotChanges(tree, base, upper)) || fullChanges(tree, base);
}

/** Both trees listed in full: O(both trees) in time and memory. */
export function fullChanges(tree: TreeView, base: TreeView): Changes {
  const current = [...tree.entries()];
  const before = [...base.entries()];
  const { changed, deleted } = diffList(before, current);
  return layerable(changed as TreeEntry[], deleted, before, current);
}

/**
 * The changes of a snapshot against its base, from the snapshot's own layers (`upper`
 * of them) and the base entries they touch. undefined: fall back to fullChanges.
 */
function snapshotChanges(tree: TreeView, base: TreeView, upper: number): Changes | undefined {
  const own = new Map<string, { layer: number; item: ReturnType<typeof readManifest> extends Generator<infer T> ? T : never }>();
  const paths = new Set<string>();
  const subtrees: Buffer[] = [];
  for (let layer = upper - 1; layer >= 0; layer--) {
    for (const item of readManifest(tree.layers[layer].manifest)) {
      const key = item.entry.path.toString("latin1");
      own.set(key, { layer, item });
      paths.add(key);
      if (item.entry.type !== "dir") subtrees.push(item.entry.path); // a whiteout or a non-directory hides what was below
    }
  }
  // Owners and devices are metadata: a chown touches no file but changes the entry.
  for (const field of ["owners", "devices", "xattrs"] as const) {
    const now = (tree.meta[field] ?? {}) as Record<string, unknown>;
    const then = (base.meta[field] ?? {}) as Record<string, unknown>;
    for (const key of new Set([...Object.keys(now), ...Object.keys(then)])) {
      if (JSON.stringify(now[key]) !== JSON.stringify(then[key])) paths.add(unescapePath(key).toString("latin1"));
    }
  }
  const baseDirs = base.dirs;
  for (const root of subtrees) {
    const found = base.locate(root);
    if (!found?.st.isDirectory()) continue;
    walkMerged(baseDirs, (rel) => paths.add(rel.toString("latin1")), root);
  }

  const baseEntries = new Map<string, TreeEntry>();
  const treeEntries = new Map<string, TreeEntry>();
  const baseEntry = (key: string): TreeEntry | null | undefined => {
    const rel = Buffer.from(key, "latin1");
    const found = base.locate(rel);
    if (!found) return null;
    if (found.st.isFile() && found.st.nlink > 1) return undefined; // a hard link group: compare in full
    const entry = diskEntry(rel, found.host, found.st);
    if (entry.type === "whiteout") return null;
    if (entry.type === "file") entry.hash = hashFile(found.host, found.st);
    return base.applyMeta({ ...entry, source: found.layer + upper, host: found.host, sig: statKey(found.st) });
  };
  const add = (key: string): boolean => {
    if (baseEntries.has(key) || treeEntries.has(key)) return true;
    const before = baseEntry(key);
    if (before === undefined) return false;
    if (before) baseEntries.set(key, before);
    const found = tree.locate(Buffer.from(key, "latin1"));
    if (!found) return true;
    if (found.layer >= upper) {
      if (before) treeEntries.set(key, tree.applyMeta({ ...before }));
      return true;
    }
    const mine = own.get(key);
    if (!mine || mine.layer !== found.layer) return false; // not in the manifest: a layer changed under us
    treeEntries.set(key, tree.treeEntry(mine.layer, mine.item));
    return true;
  };
  for (const key of paths) if (!add(key)) return undefined;
  // The opaque rule needs every old child of a directory that lost children.
  const parents = new Set<string>();
  for (const key of baseEntries.keys()) if (!treeEntries.has(key)) parents.add(parentPath(Buffer.from(key, "latin1")).toString("latin1"));
  for (const parent of parents) {
    if (parent === "") continue;
    for (const child of readMergedDir(baseDirs, Buffer.from(parent, "latin1"))) {
      if (!add(`${parent}/${child.name.toString("latin1")}`)) return undefined;
    }
  }
  const sorted = (m: Map<string, TreeEntry>) => [...m.values()].sort((a, b) => Buffer.compare(a.path, b.path));
  const before = sorted(baseEntries);
  const current = sorted(treeEntries);
  const { changed, deleted } = diffList(before, current);
  return layerable(changed as TreeEntry[], deleted, before, current);
}

/**
 * A diff that a layer can carry as it is, so Docker, containerd and umoci apply it to
 * exactly the new tree (OCI image-spec, "Changesets"):
 * - a path that stopped being a directory replaces the old directory whole: its old
 *   children get no whiteouts (an applier removes the directory; a whiteout below a
 *   file is an error in Docker);
 * - a hard link group is in the layer whole or not at all: when one name of it changed,
 *   every name is carried (the first with the data, the others linked to it), since a
 *   link to a file of a lower layer cannot be made and a lower layer's copy would not
 *   share the new data.
 * `before` and `current` hold every entry the comparison looked at (all of the trees, or
 * what a snapshot touched).
 */
function layerable(changed: TreeEntry[], deleted: Buffer[], before: { path: Buffer }[], current: TreeEntry[]): Changes {
  const key = (p: Buffer) => p.toString("latin1");
  const nonDirs = new Set(current.filter((e) => e.type !== "dir").map((e) => key(e.path)));
  const underNonDir = (p: Buffer) => {
    for (let i = p.indexOf(0x2f); i >= 0; i = p.indexOf(0x2f, i + 1)) if (nonDirs.has(key(p.subarray(0, i)))) return true;
    return false;
  };
  const kept = deleted.filter((p) => !underNonDir(p));
  // Hard link groups, by their first name: the first name's entry and the others.
  const groups = new Map<string, TreeEntry[]>();
  for (const e of current) {
    if (e.type === "hardlink") {
      const head = key(e.linkTarget!);
      if (!groups.has(head)) groups.set(head, []);
      groups.get(head)!.push(e);
    }
  }
  const byPath = new Map(current.map((e) => [key(e.path), e]));
  const inLayer = new Map(changed.map((e) => [key(e.path), e]));
  for (const e of [...inLayer.values()]) {
    const head = e.type === "hardlink" ? key(e.linkTarget!) : e.type === "file" ? key(e.path) : undefined;
    if (head === undefined || !groups.has(head)) continue;
    for (const member of [byPath.get(head)!, ...groups.get(head)!]) if (member) inLayer.set(key(member.path), member);
  }
  const fixed = [...inLayer.values()].sort((a, b) => Buffer.compare(a.path, b.path));
  return { changed: fixed, deleted: kept, whiteouts: withOpaqueMarkers(before, current, kept) };
}

/**
 * A directory kept in name but whose every old child is gone was replaced whole: one
 * opaque marker (D/.wh..wh..opq) says so instead of a whiteout per child.
 */
export function withOpaqueMarkers(base: { path: Buffer }[], current: { path: Buffer; type: string }[], deleted: Buffer[]): Buffer[] {
  const dirs = new Set(current.filter((e) => e.type === "dir").map((e) => e.path.toString("latin1")));
  const parentOf = (p: Buffer) => parentPath(p).toString("latin1");
  const currentNames = new Set(current.map((e) => e.path.toString("latin1")));
  const baseChildren = new Map<string, number>();
  const survivors = new Set<string>(); // parents with an old child that is still there
  for (const e of base) {
    const parent = parentOf(e.path);
    baseChildren.set(parent, (baseChildren.get(parent) ?? 0) + 1);
    if (currentNames.has(e.path.toString("latin1"))) survivors.add(parent);
  }
  const goneChildren = new Map<string, Buffer[]>();
  for (const d of deleted) {
    const parent = parentOf(d);
    if (!goneChildren.has(parent)) goneChildren.set(parent, []);
    goneChildren.get(parent)!.push(d);
  }
  const result: Buffer[] = [];
  for (const [parent, gone] of goneChildren) {
    if (parent && dirs.has(parent) && !survivors.has(parent) && gone.length === baseChildren.get(parent) && gone.length > 1) {
      result.push(Buffer.from(`${parent}/${OPAQUE_MARKER}`, "latin1"));
    } else {
      result.push(...gone);
    }
  }
  return result.sort(Buffer.compare);
}
