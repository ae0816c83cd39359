/**
 * layer(fs, diffbase): a deterministic tar of exactly the listed entries (NAME.layer).
 * Deletions become whiteouts (.wh.NAME, or an opaque .wh..wh..opq), hard links stay
 * links, every entry gets the same mtime and numeric owners.
 */
import * as fs from "node:fs";
import { CrecipeError } from "../engine/errors.ts";
import { type Node, target } from "../engine/node.ts";
import type { Entry } from "../formats/entry.ts";
import { escapePath, parseList } from "../formats/filelist.ts";
import { ArchiveFile } from "./archive.ts";
import { tarEnd, tarHeader, tarPadding } from "../formats/tar.ts";
import { asFs } from "./fs.ts";
import { files, list } from "./list.ts";

/** The timestamp every archive entry gets: $SOURCE_DATE_EPOCH, else 0 (1970-01-01). */
export function sourceDateEpoch(): number {
  const value = process.env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === "") return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new CrecipeError(`SOURCE_DATE_EPOCH=${value} is not a number of seconds`);
  return n;
}

/**
 * A layer tarball of `tree`, or of what changed from `diffbase`.
 *
 * ```ts
 * const libsLayer = layer("libs", "simple");   // libraries only: libs diffed against simple
 * ```
 */
/** What a layer target's value says: its sha256 (diff_id and blob digest) and size. */
export interface LayerValue {
  digest: string;
  size: number;
}

export function layer(tree: Node | string, diffbase?: Node | string): Node<LayerValue> {
  const fsNode = asFs(tree);
  const listNode = list(fsNode, diffbase);
  const baseFiles = diffbase === undefined ? undefined : files(asFs(diffbase));
  const currentFiles = files(fsNode);
  const mtime = sourceDateEpoch();
  return target(`${fsNode.name}.layer`, async (ctx) => {
    const root = await ctx.need(fsNode);
    const { entries, deletions: deleted } = parseList(fs.readFileSync(await ctx.need(listNode), "utf8"));
    let deletions = deleted;
    if (baseFiles && deleted.length) {
      const read = async (n: Node) => parseList(fs.readFileSync(await ctx.need(n), "utf8")).entries;
      deletions = opaque(await read(baseFiles), await read(currentFiles), deleted);
    }
    const whiteouts: Entry[] = deletions.map((p) => ({ path: whiteoutPath(p), type: "whiteout", mode: 0o644, uid: 0, gid: 0, size: 0 }));
    const all = [...entries, ...whiteouts].sort((a, b) => Buffer.compare(a.path, b.path));
    const tar = new ArchiveFile(ctx.out);
    try {
      for (const entry of all) {
        tar.write(tarHeader(entry, mtime));
        if (entry.type !== "file" || entry.size === 0) continue;
        const copied = tar.copyFrom(Buffer.concat([Buffer.from(root + "/"), entry.path]));
        if (copied !== entry.size) {
          throw new CrecipeError(`${ctx.name}: ${escapePath(entry.path)} changed size while packing (${entry.size} → ${copied} bytes)`, {
            target: ctx.name,
            fix: "something is writing into the tree; run again when it is done",
          });
        }
        tar.write(tarPadding(entry.size));
      }
      tar.write(tarEnd());
    } catch (error) {
      tar.abandon();
      throw error;
    }
    const digest = tar.close();
    ctx.trustOutputHash(digest);
    return { digest, size: tar.size };
  }, { kind: "layer", options: { fs: fsNode, list: listNode, mtime } });
}

/** dir/name → dir/.wh.name; an opaque marker stays as it is. */
function whiteoutPath(deleted: Buffer): Buffer {
  const i = deleted.lastIndexOf(0x2f);
  const dir = i < 0 ? Buffer.alloc(0) : deleted.subarray(0, i + 1);
  const name = deleted.subarray(i + 1);
  if (name.toString("latin1") === OPAQUE) return deleted;
  return Buffer.concat([dir, Buffer.from(".wh."), name]);
}

const OPAQUE = ".wh..wh..opq";

/**
 * A directory kept in name but whose every old child is gone was replaced whole: one
 * opaque marker (D/.wh..wh..opq) says so instead of a whiteout per child.
 */
function opaque(base: Entry[], current: Entry[], deleted: Buffer[]): Buffer[] {
  const dirs = new Set(current.filter((e) => e.type === "dir").map((e) => e.path.toString("latin1")));
  const parentOf = (p: Buffer) => {
    const i = p.lastIndexOf(0x2f);
    return i < 0 ? "" : p.subarray(0, i).toString("latin1");
  };
  const baseChildren = new Map<string, number>();
  for (const e of base) baseChildren.set(parentOf(e.path), (baseChildren.get(parentOf(e.path)) ?? 0) + 1);
  const currentNames = new Set(current.map((e) => e.path.toString("latin1")));
  const goneChildren = new Map<string, Buffer[]>();
  for (const d of deleted) {
    const parent = parentOf(d);
    if (!goneChildren.has(parent)) goneChildren.set(parent, []);
    goneChildren.get(parent)!.push(d);
  }
  const result: Buffer[] = [];
  for (const [parent, gone] of goneChildren) {
    const survivors = base.some((e) => parentOf(e.path) === parent && currentNames.has(e.path.toString("latin1")));
    if (parent && dirs.has(parent) && !survivors && gone.length === baseChildren.get(parent) && gone.length > 1) {
      result.push(Buffer.from(`${parent}/${OPAQUE}`, "latin1"));
    } else {
      result.push(...gone);
    }
  }
  return result.sort(Buffer.compare);
}
