/**
 * A built fs as its readers see it: one layer (an ordinary tree) or a stack (a
 * snapshot's upper directory over its base, and so on down), merged by overlayfs's
 * rules (tree/layers.ts). Entries come from the layers' manifests, written when each
 * layer was built (engine/manifest.ts), so listing a tree reads no file and a snapshot's
 * own changes are found without looking at its base at all.
 */
import { type Entry, escapePath } from "../formats/entry.ts";
import { CrecipeError } from "../engine/errors.ts";
import { type ManifestEntry, manifestSummary, readManifest } from "../engine/manifest.ts";
import { lookup } from "../engine/node.ts";
import type { BuildContext, Node, Result } from "../engine/types.ts";
import { locate, type Found } from "./layers.ts";
import { asMeta, type TreeMeta } from "./meta.ts";

export interface ViewLayer {
  /** The fs target whose output this layer is. */
  name: string;
  dir: string;
  manifest: string;
  stamp: string;
}

/** An entry of the merged tree, with where its content is and what stat said of it. */
export interface TreeEntry extends Entry {
  /** The layer holding it (0 is the top). */
  source: number;
  /** Its path on the host, to read content from. */
  host: Buffer;
  /** What stat said when its layer was built (engine/manifest.ts statKey). */
  sig: string;
}

export class TreeView {
  private readonly prefixes: Buffer[];
  private readonly noMeta: boolean;

  constructor(readonly name: string, readonly layers: readonly ViewLayer[], readonly meta: TreeMeta) {
    this.prefixes = layers.map((l) => Buffer.from(l.dir + "/"));
    this.noMeta = Object.keys(meta.owners).length === 0 && Object.keys(meta.devices).length === 0 && Object.keys(meta.xattrs ?? {}).length === 0;
  }

  /** The tree built by `tree` (and the layers under it), as a dependency of `ctx`'s target. */
  static async open(ctx: BuildContext, tree: Node): Promise<TreeView> {
    return TreeView.fromResult(ctx, await ctx.result(tree));
  }

  static async fromResult(ctx: BuildContext, result: Result): Promise<TreeView> {
    const fail = (why: string, fix?: string) => new CrecipeError(`${ctx.name}: ${result.name} ${why}`, { target: ctx.name, fix });
    if (!result.path || !result.manifest) throw fail("is not a tree (its output is not a directory)", "pass an fs target");
    const meta = asMeta(result.value);
    const layers: ViewLayer[] = [{ name: result.name, dir: result.path, manifest: result.manifest, stamp: result.stamp }];
    for (let base = meta.base; base;) {
      const node = lookup(base.name);
      if (!node) throw fail(`stands on ${base.name}, which is no longer declared`, `rebuild ${result.name}`);
      const under = await ctx.result(node);
      if (under.stamp !== base.stamp) throw fail(`stands on an older build of ${base.name}`, `rebuild ${result.name}`);
      if (!under.path || !under.manifest) throw fail(`stands on ${base.name}, which is not a tree`);
      layers.push({ name: under.name, dir: under.path, manifest: under.manifest, stamp: under.stamp });
      base = asMeta(under.value).base;
    }
    return new TreeView(result.name, layers, meta);
  }

  get dirs(): string[] {
    return this.layers.map((l) => l.dir);
  }

  /** Where `rel` is on disk, by overlayfs's rules. */
  locate(rel: Buffer): Found | undefined {
    return locate(this.dirs, rel);
  }

  /** The view of the layers from `index` down (a snapshot's base, seen from the snapshot). */
  below(index: number, meta: TreeMeta): TreeView {
    return new TreeView(this.layers[index].name, this.layers.slice(index), meta);
  }

  /** Owners and device nodes recorded in the metadata, applied to an entry. */
  applyMeta<T extends Entry>(entry: T): T {
    if (this.noMeta) return entry;
    const key = escapePath(entry.path);
    const owner = this.meta.owners[key];
    if (owner) [entry.uid, entry.gid] = owner;
    const device = this.meta.devices[key];
    if (device) {
      Object.assign(entry, { type: device.type, mode: device.mode, devMajor: device.major, devMinor: device.minor, size: 0 });
      delete entry.hash;
    }
    const xattrs = this.meta.xattrs?.[key];
    if (xattrs && entry.type !== "hardlink") {
      entry.xattrs = Object.fromEntries(Object.entries(xattrs).map(([name, hex]) => [name, Buffer.from(hex, "hex")]));
    }
    return entry;
  }

  treeEntry(layer: number, item: ManifestEntry): TreeEntry {
    const entry = item.entry as TreeEntry;
    entry.source = layer;
    entry.host = Buffer.concat([this.prefixes[layer], entry.path]);
    entry.sig = item.sig;
    return this.applyMeta(entry);
  }

  /** How many files and bytes the layers hold (an upper bound for the merged tree). */
  size(): { files: number; bytes: number } {
    const all = this.layers.map((l) => manifestSummary(l.manifest));
    return { files: all.reduce((n, s) => n + s.files, 0), bytes: all.reduce((n, s) => n + s.bytes, 0) };
  }

  /**
   * The tree's file list as a file that already exists: for a tree of one layer without
   * recorded owners its manifest's list is the file list (when no name needs a check).
   */
  plainList(): string | undefined {
    if (this.layers.length > 1 || !this.noMeta || !manifestSummary(this.layers[0].manifest).plain) return undefined;
    return `${this.layers[0].manifest}.list`;
  }

  /**
   * Every entry of the merged tree, in bytewise path order, streamed: the layers'
   * manifests merged as overlayfs merges the directories. A hard link whose first name
   * is hidden by an upper layer becomes the file itself (its other names stay linked).
   */
  *entries(): Generator<TreeEntry> {
    const count = this.layers.length;
    const streams = this.layers.map((l) => readManifest(l.manifest));
    if (count === 1) {
      // One layer hides nothing: every entry but a whiteout is shown as it is.
      for (const item of streams[0]) if (item.entry.type !== "whiteout") yield this.treeEntry(0, item);
      return;
    }
    const heads: (ManifestEntry | undefined)[] = streams.map((s) => s.next().value || undefined);
    // Paths that hide what the layers below them hold under them: whiteouts (and the
    // path itself), and non-directories of every layer but the last.
    const hiders = new Map<string, number>();
    const unseen = new Map<string, ManifestEntry>(); // `${layer}:${path}` → a file not shown
    const relinked = new Map<string, Buffer>(); // `${layer}:${old first path}` → the new first path
    const hidden = (key: string, layer: number) => {
      if (hiders.size === 0) return false;
      for (let i = key.indexOf("/"); i >= 0; i = key.indexOf("/", i + 1)) {
        const by = hiders.get(key.slice(0, i));
        if (by !== undefined && by < layer) return true;
      }
      return false;
    };
    for (;;) {
      let min: Buffer | undefined;
      for (const head of heads) if (head && (!min || Buffer.compare(head.entry.path, min) < 0)) min = head.entry.path;
      if (!min) return;
      const key = min.toString("latin1");
      let decided = false;
      let shown: { layer: number; item: ManifestEntry } | undefined;
      for (let i = 0; i < count; i++) {
        const head = heads[i];
        if (!head || !head.entry.path.equals(min)) continue;
        heads[i] = streams[i].next().value || undefined;
        if (decided || hidden(key, i)) {
          // A directory above decided the path; a whiteout or a non-directory here still
          // hides what the layers below hold under it (overlayfs merges down to it only).
          const hides = head.entry.type === "whiteout" || (head.entry.type !== "dir" && i < count - 1);
          if (decided && hides && !hiders.has(key)) hiders.set(key, i);
          decided = true;
          if (head.entry.type === "file") unseen.set(`${i}:${key}`, head);
          continue;
        }
        decided = true;
        if (head.entry.type === "whiteout") {
          hiders.set(key, i);
          continue;
        }
        shown = { layer: i, item: head };
        if (head.entry.type !== "dir" && i < count - 1) hiders.set(key, i);
      }
      if (!shown) continue;
      const entry = this.treeEntry(shown.layer, shown.item);
      if (entry.type === "hardlink" && count > 1) {
        const groupKey = `${shown.layer}:${entry.linkTarget!.toString("latin1")}`;
        const moved = relinked.get(groupKey);
        const first = unseen.get(groupKey);
        if (moved) entry.linkTarget = moved;
        else if (first) {
          // The group's first name is gone from the merged tree: this name carries the data now.
          Object.assign(entry, { type: first.entry.type, size: first.entry.size, hash: first.entry.hash, linkTarget: undefined });
          delete entry.linkTarget;
          relinked.set(groupKey, entry.path);
        }
      }
      yield entry;
    }
  }
}
