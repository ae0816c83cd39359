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

const SLASH = 0x2f;

/** Every path under `root` (not the root itself), lstat'ed, in bytewise order of full paths. */
export function walkSorted(root: string | Buffer, visit: Visit): void {
  const prefix = Buffer.concat([Buffer.from(root), Buffer.from("/")]);
  walkDir(prefix, Buffer.alloc(0), visit);
}

interface Item {
  /** Sort key: the name, or the name plus "/" for a directory's contents. */
  key: Buffer;
  name: Buffer;
  contents: boolean;
}

function walkDir(prefix: Buffer, rel: Buffer, visit: Visit): void {
  const dir = rel.length ? Buffer.concat([prefix, rel]) : prefix.subarray(0, prefix.length - 1);
  const names = fs.readdirSync(dir, { encoding: "buffer" });
  const items: Item[] = [];
  const stats = new Map<Buffer, fs.Stats>();
  for (const name of names) {
    const full = Buffer.concat([prefix, rel, rel.length ? SLASH_BUF : EMPTY, name]);
    const st = fs.lstatSync(full);
    stats.set(name, st);
    items.push({ key: name, name, contents: false });
    if (st.isDirectory()) items.push({ key: Buffer.concat([name, SLASH_BUF]), name, contents: true });
  }
  items.sort((a, b) => Buffer.compare(a.key, b.key));
  for (const item of items) {
    const child = rel.length ? Buffer.concat([rel, SLASH_BUF, item.name]) : item.name;
    if (item.contents) walkDir(prefix, child, visit);
    else visit(child, Buffer.concat([prefix, child]), stats.get(item.name)!);
  }
}

const SLASH_BUF = Buffer.from([SLASH]);
const EMPTY = Buffer.alloc(0);

/**
 * The names of one directory in the walk's order, with "contents" markers: a
 * directory's name appears once as itself and once (contents: true) where its children
 * go. Used to merge several layers' listings of the same directory.
 */
export function sortedItems(names: Buffer[], isDir: (name: Buffer) => boolean): { name: Buffer; contents: boolean }[] {
  const items: Item[] = [];
  for (const name of names) {
    items.push({ key: name, name, contents: false });
    if (isDir(name)) items.push({ key: Buffer.concat([name, SLASH_BUF]), name, contents: true });
  }
  items.sort((a, b) => Buffer.compare(a.key, b.key));
  return items;
}

/** walkSorted, letting the event loop run now and then (engine/io.ts breathe). */
export async function walkSortedAsync(root: string | Buffer, visit: Visit, breathe: () => Promise<void> | undefined): Promise<void> {
  const prefix = Buffer.concat([Buffer.from(root), Buffer.from("/")]);
  const walk = async (rel: Buffer): Promise<void> => {
    const dir = rel.length ? Buffer.concat([prefix, rel]) : prefix.subarray(0, prefix.length - 1);
    const names = fs.readdirSync(dir, { encoding: "buffer" });
    const items: Item[] = [];
    const stats = new Map<Buffer, fs.Stats>();
    for (const name of names) {
      const full = Buffer.concat([prefix, rel, rel.length ? SLASH_BUF : EMPTY, name]);
      const st = fs.lstatSync(full);
      stats.set(name, st);
      items.push({ key: name, name, contents: false });
      if (st.isDirectory()) items.push({ key: Buffer.concat([name, SLASH_BUF]), name, contents: true });
    }
    items.sort((a, b) => Buffer.compare(a.key, b.key));
    for (const item of items) {
      const child = rel.length ? Buffer.concat([rel, SLASH_BUF, item.name]) : item.name;
      if (item.contents) await walk(child);
      else {
        visit(child, Buffer.concat([prefix, child]), stats.get(item.name)!);
        await breathe();
      }
    }
  };
  await walk(Buffer.alloc(0));
}
