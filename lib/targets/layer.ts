/**
 * layer(fs, diffbase): a deterministic tar of exactly the listed entries (NAME.layer).
 * Deletions become whiteouts (.wh.NAME, or an opaque .wh..wh..opq), hard links stay
 * links, every entry gets the same mtime and numeric owners.
 */
import * as fs from "node:fs";
import { CrecipeError } from "../engine/errors.ts";
import { type Node, target } from "../engine/node.ts";
import type { Entry } from "../formats/entry.ts";
import { parseList } from "../formats/filelist.ts";
import { tarEnd, tarHeader, tarPadding } from "../formats/tar.ts";
import { asFs } from "./fs.ts";
import { list, OPAQUE } from "./list.ts";

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
export function layer(tree: Node | string, diffbase?: Node | string): Node {
  const fsNode = asFs(tree);
  const listNode = list(fsNode, diffbase);
  const mtime = sourceDateEpoch();
  return target(`${fsNode.name}.layer`, async (ctx) => {
    const root = await ctx.need(fsNode);
    const { entries, deletions } = parseList(fs.readFileSync(await ctx.need(listNode), "utf8"));
    const whiteouts: Entry[] = deletions.map((p) => ({ path: whiteoutPath(p), type: "whiteout", mode: 0o644, uid: 0, gid: 0, size: 0 }));
    const all = [...entries, ...whiteouts].sort((a, b) => Buffer.compare(a.path, b.path));
    const fd = fs.openSync(ctx.out, "w");
    try {
      for (const entry of all) {
        fs.writeSync(fd, tarHeader(entry, mtime));
        if (entry.type !== "file" || entry.size === 0) continue;
        const data = fs.readFileSync(Buffer.concat([Buffer.from(root + "/"), entry.path]));
        if (data.length !== entry.size) {
          throw new CrecipeError(`${ctx.name}: ${entry.path} changed size while packing (${entry.size} → ${data.length} bytes)`, {
            target: ctx.name,
            fix: "something is writing into the tree; run again when it is done",
          });
        }
        fs.writeSync(fd, data);
        fs.writeSync(fd, tarPadding(entry.size));
      }
      fs.writeSync(fd, tarEnd());
    } finally {
      fs.closeSync(fd);
    }
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
