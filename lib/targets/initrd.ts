/**
 * initrd(fs): the cookbook's default.initrd.do. A cpio "newc" archive written by crecipe
 * (formats/cpio.ts) of the whole tree plus crecipe's static /rdinit, deterministic:
 * sorted entries, one mtime, owners 0:0 unless recorded, inodes in order, hard links kept.
 * Streamed: each file is read once, and memory holds only directories and link groups.
 */
import * as fs from "node:fs";
import { CrecipeError } from "../engine/errors.ts";
import { breathe, OutputFile } from "../engine/io.ts";
import { statKey } from "../engine/manifest.ts";
import { type Node, target } from "../engine/node.ts";
import { cpioEntry, cpioPadding, cpioTrailer } from "../formats/cpio.ts";
import { type Entry, escapePath, parentPath } from "../formats/entry.ts";
import { GzipStream } from "../formats/zlib-stream.ts";
import { TreeView } from "../tree/view.ts";
import { asFs } from "./fs.ts";
import { sourceDateEpoch } from "./layer.ts";
import { rdinit } from "./rdinit.ts";

/** How initrd() packs a tree. */
export interface InitrdOptions {
  /**
   * gzip the archive, as one stream of crecipe's own zlib (the same bytes everywhere;
   * default false: under TCG the kernel's gunzip costs more than it saves).
   */
  gzip?: boolean;
}

/**
 * What a gzipped initrd is compressed by (GzipStream), in its identity: one made before
 * it was crecipe's own (by the runtime's zlib) is built again, here and in a shared cache.
 */
const GZIP_BY = "zlib 1.2.13 in WebAssembly, level 6";

interface Item {
  entry: Entry;
  host?: Buffer | string;
  sig?: string;
}

/**
 * NAME.initrd: the tree as an initramfs (cpio newc) with crecipe's static /rdinit, what
 * run.kvm boots; deterministic (sorted, one mtime, owners as recorded).
 *
 * ```ts
 * export const libsInitrd = initrd(libs);
 * ```
 */
export function initrd(tree: Node | string, options: InitrdOptions = {}): Node {
  const fsNode = asFs(tree);
  const helper = rdinit();
  const mtime = sourceDateEpoch();
  const gzip = Boolean(options.gzip);
  return target(`${fsNode.name}.initrd`, async (ctx) => {
    const view = await TreeView.open(ctx, fsNode);
    const rdinitPath = await ctx.need(helper);
    const helperItem: Item = {
      entry: { path: Buffer.from("rdinit"), type: "file", mode: 0o755, uid: 0, gid: 0, size: fs.statSync(rdinitPath).size },
      host: rdinitPath,
    };
    // The tree's entries with crecipe's /rdinit in its place, in path order.
    const items = function* (): Generator<Item> {
      let placed = false;
      for (const entry of view.entries()) {
        const order = Buffer.compare(entry.path, helperItem.entry.path);
        if (order === 0) continue;
        if (order > 0 && !placed) (placed = true), yield helperItem;
        yield { entry, host: entry.host, sig: entry.sig };
      }
      if (!placed) yield helperItem;
    };
    // First pass: subdirectories per directory (a directory's nlink) and hard link groups.
    const key = (p: Buffer) => p.toString("latin1");
    const subdirs = new Map<string, number>();
    const groups = new Map<string, { size: number; last: string }>();
    let withXattrs = 0;
    for (const { entry } of items()) {
      if (entry.xattrs && Object.keys(entry.xattrs).length) withXattrs++;
      if (entry.type === "dir") subdirs.set(key(parentPath(entry.path)), (subdirs.get(key(parentPath(entry.path))) ?? 0) + 1);
      if (entry.type === "hardlink") {
        const head = key(entry.linkTarget!);
        const group = groups.get(head) ?? { size: 1, last: head };
        groups.set(head, { size: group.size + 1, last: key(entry.path) });
      }
    }
    if (withXattrs) ctx.warn(`${withXattrs} entries have extended attributes (file capabilities, ACLs); a cpio initrd cannot hold them, so the guest sees none`);
    const out = new OutputFile(ctx.out, gzip ? 0 : view.size().bytes);
    const sink = gzip ? gzipInto(out) : { write: (b: Uint8Array) => out.write(b), end: async () => {} };
    try {
      const inodes = new Map<string, number>();
      const heads = new Map<string, Item>();
      for (const item of items()) {
        const { entry } = item;
        const head = entry.type === "hardlink" ? key(entry.linkTarget!) : key(entry.path);
        const owner = entry.type === "hardlink" ? heads.get(head) : item;
        if (!owner) throw new CrecipeError(`${ctx.name}: hard link ${escapePath(entry.path)} comes before its target`, { target: ctx.name });
        if (!inodes.has(head)) inodes.set(head, inodes.size + 1);
        const ino = inodes.get(head)!;
        const group = groups.get(head);
        if (group && entry.type !== "hardlink") heads.set(head, item);
        // Members are copies of the inode's owner under their own name: one inode, one mode.
        const member: Entry = { ...owner.entry, path: entry.path };
        if (member.type !== "file") {
          const nlink = member.type === "dir" ? 2 + (subdirs.get(key(entry.path)) ?? 0) : 1;
          await sink.write(cpioEntry(member, ino, nlink, mtime, member.type === "symlink" ? undefined : Buffer.alloc(0)));
          continue;
        }
        const nlink = group?.size ?? 1;
        // As GNU cpio does, a link group's data goes with its last member.
        const carries = !group || group.last === key(entry.path);
        await sink.write(cpioEntry(carries ? member : { ...member, size: 0 }, ino, nlink, mtime));
        if (carries && member.size > 0) {
          await copyInto(sink, owner, ctx.name, fsNode.name);
          await sink.write(cpioPadding(member.size));
        }
        const pause = breathe(); // a signal's handler gets its turn
        if (pause) await pause;
      }
      await sink.write(cpioTrailer());
      await sink.end();
    } catch (error) {
      out.abandon();
      throw error;
    }
    ctx.trustOutputHash(out.close());
  }, { kind: "initrd", shared: true, options: { fs: fsNode, gzip: gzip && GZIP_BY, mtime }, derived: true });
}

/** Append a file's bytes, checking it is still what the tree's manifest says. */
async function copyInto(sink: { write(b: Uint8Array): unknown }, item: Item, target: string, tree: string): Promise<void> {
  const fd = fs.openSync(item.host!, "r");
  try {
    const st = fs.fstatSync(fd);
    if ((item.sig && statKey(st) !== item.sig) || st.size !== item.entry.size) {
      throw new CrecipeError(`${escapePath(item.entry.path)} changed after ${tree} was built`, {
        target,
        fix: `something edited out/${tree} by hand: run crecipe again with --check, which finds and rebuilds it`,
      });
    }
    const chunk = Buffer.allocUnsafe(Math.min(1 << 20, item.entry.size));
    for (let done = 0; done < item.entry.size;) {
      const n = fs.readSync(fd, chunk, 0, Math.min(chunk.length, item.entry.size - done), null);
      if (n === 0) throw new CrecipeError(`${escapePath(item.entry.path)} shrank while packing`, { target });
      await sink.write(chunk.subarray(0, n)); // both sinks copy it before this returns
      done += n;
      const pause = breathe(); // a large file is gzipped here, on this thread: signals get their turn
      if (pause) await pause;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A sink that gzips into `out` as one gzip stream (level 6), crecipe's own (formats/
 * zlib-stream.ts), so the same tree gives the same bytes under Node and Deno. One stream:
 * the kernel unpacks each gzip member of an initramfs as whole cpio archives.
 */
function gzipInto(out: OutputFile) {
  const stream = new GzipStream(6);
  const put = (piece: Uint8Array) => out.write(piece); // copies it, as push() asks
  return {
    write: (b: Uint8Array) => stream.push(b, put),
    end: async () => stream.end(put),
  };
}
