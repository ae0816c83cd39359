/**
 * Walking a directory in the one order every list and archive uses: full paths sorted
 * as plain bytes. A depth-first walk with each directory's names sorted is not that
 * order ("a/b" comes after "a-c", since "/" sorts after "-"), so a directory's contents
 * are visited at the place of "name/" among its siblings, not right after "name". Only
 * one directory listing per level is held: memory follows depth, not size.
 *
 * Names are bytes: a non-UTF-8 name must not turn into U+FFFD and then fail to stat.
 */
import * as fs from "node:fs";

export type Visit = (rel: Buffer, full: Buffer, st: fs.Stats) => void;

interface Item {
  /** Sort key: the name, or the name plus "/" for a directory's contents. */
  key: Buffer;
  name: Buffer;
  contents: boolean;
}

const SLASH = Buffer.from("/");

/**
 * The names of one directory in the walk's order, with "contents" markers: a
 * directory's name appears once as itself and once (contents: true) where its children
 * go. Used to merge several layers' listings of the same directory.
 */
export function sortedItems(names: Buffer[], isDir: (name: Buffer) => boolean): { name: Buffer; contents: boolean }[] {
  const items: Item[] = [];
  for (const name of names) {
    items.push({ key: name, name, contents: false });
    if (isDir(name)) items.push({ key: Buffer.concat([name, SLASH]), name, contents: true });
  }
  items.sort((a, b) => Buffer.compare(a.key, b.key));
  return items;
}

/** One path of a directory: relative to the walk's root, in full, lstat'ed. */
interface Found {
  rel: Buffer;
  full: Buffer;
  st: fs.Stats;
}

/** The directory `rel` under `prefix`, lstat'ed, in the walk's order (see sortedItems). */
function readLevel(prefix: Buffer, rel: Buffer): { found: Found; contents: boolean }[] {
  const dir = rel.length ? Buffer.concat([prefix, rel]) : prefix.subarray(0, prefix.length - 1);
  const byName = new Map<Buffer, Found>();
  for (const name of fs.readdirSync(dir, { encoding: "buffer" })) {
    const child = rel.length ? Buffer.concat([rel, SLASH, name]) : name;
    const full = Buffer.concat([prefix, child]);
    byName.set(name, { rel: child, full, st: fs.lstatSync(full) });
  }
  return sortedItems([...byName.keys()], (name) => byName.get(name)!.st.isDirectory())
    .map(({ name, contents }) => ({ found: byName.get(name)!, contents }));
}

const rootPrefix = (root: string | Buffer) => Buffer.concat([Buffer.from(root), SLASH]);

/** Every path under `root` (not the root itself), lstat'ed, in bytewise order of full paths. */
export function walkSorted(root: string | Buffer, visit: Visit): void {
  const prefix = rootPrefix(root);
  const walk = (rel: Buffer): void => {
    for (const { found, contents } of readLevel(prefix, rel)) {
      if (contents) walk(found.rel);
      else visit(found.rel, found.full, found.st);
    }
  };
  walk(Buffer.alloc(0));
}

/** walkSorted, letting the event loop run now and then (engine/io.ts breathe). */
export async function walkSortedAsync(root: string | Buffer, visit: Visit, breathe: () => Promise<void> | undefined): Promise<void> {
  const prefix = rootPrefix(root);
  const walk = async (rel: Buffer): Promise<void> => {
    for (const { found, contents } of readLevel(prefix, rel)) {
      if (contents) await walk(found.rel);
      else {
        visit(found.rel, found.full, found.st);
        await breathe();
      }
    }
  };
  await walk(Buffer.alloc(0));
}

/**
 * Hard link groups met in a walk: the first path of each, by device and inode. Held
 * compactly (a number key, the path as a latin1 string, not a Buffer that would pin a
 * pool slab): a tree made with `cp -al` has a group for every file, its other names being
 * outside the tree.
 */
export class LinkGroups {
  private readonly byKey = new Map<number | string, string>();

  /** The first path of st's group when one was met; else undefined, and `rel` becomes its first. */
  first(rel: Buffer, st: fs.Stats): Buffer | undefined {
    if (st.nlink < 2) return undefined;
    const key = this.key(st);
    const found = this.byKey.get(key);
    if (found !== undefined) return Buffer.from(found, "latin1");
    this.byKey.set(key, rel.toString("latin1"));
    return undefined;
  }

  /** Remember `rel` as the first path of st's group. */
  remember(rel: Buffer, st: fs.Stats): void {
    if (st.nlink > 1) this.byKey.set(this.key(st), rel.toString("latin1"));
  }

  private dev: number | undefined;
  private key(st: fs.Stats): number | string {
    this.dev ??= st.dev;
    // One device and an inode below 2^53 (always, on Linux): the inode alone.
    return st.dev === this.dev && Number.isSafeInteger(st.ino) ? st.ino : `${st.dev}:${st.ino}`;
  }
}
