/**
 * initrd(fs): the cookbook's default.initrd.do. A cpio "newc" archive written by crecipe
 * (formats/cpio.ts) of the whole tree plus crecipe's static /rdinit, deterministic:
 * sorted entries, one mtime, owners 0:0 unless recorded, inodes in order, hard links kept.
 */
import * as fs from "node:fs";
import { gzipSync } from "node:zlib";
import { type Node, target } from "../engine/node.ts";
import { cpioArchive, sortItems } from "../formats/cpio.ts";
import type { Entry } from "../formats/entry.ts";
import { rdinit } from "../run/rdinit.ts";
import { scanTree, type Ownership } from "../tree/scan.ts";
import { asFs } from "./fs.ts";
import { sourceDateEpoch } from "./layer.ts";

export interface InitrdOptions {
  /** gzip the archive (default false: under TCG the kernel's gunzip costs more than it saves). */
  gzip?: boolean;
}

export function initrd(tree: Node | string, options: InitrdOptions = {}): Node {
  const fsNode = asFs(tree);
  const helper = rdinit();
  const mtime = sourceDateEpoch();
  const gzip = Boolean(options.gzip);
  return target(`${fsNode.name}.initrd`, async (ctx) => {
    const built = await ctx.result(fsNode);
    const rdinitPath = await ctx.need(helper);
    const prefix = Buffer.from(built.path! + "/");
    const items: { entry: Entry; content?: Buffer }[] = scanTree(built.path!, (built.value as Ownership | null) ?? undefined)
      .filter((e) => e.path.toString("latin1") !== "rdinit")
      .map((entry) => ({ entry, content: entry.type === "file" ? fs.readFileSync(Buffer.concat([prefix, entry.path])) : undefined }));
    const helperBytes = fs.readFileSync(rdinitPath);
    items.push({
      entry: { path: Buffer.from("rdinit"), type: "file", mode: 0o755, uid: 0, gid: 0, size: helperBytes.length },
      content: helperBytes,
    });
    const archive = cpioArchive(sortItems(items), mtime);
    fs.writeFileSync(ctx.out, gzip ? gzipSync(archive, { level: 6 }) : archive);
  }, { kind: "initrd", options: { fs: fsNode, gzip, mtime } });
}
