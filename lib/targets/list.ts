/**
 * files(fs): every path of a tree with type, mode, owner, size and hash (NAME.files).
 * list(fs, diffbase): what a layer holds, the entries new or changed against the
 * diffbase plus the paths it deleted (NAME.list), as in the cookbook's default.list.do.
 */
import * as fs from "node:fs";
import { type Node, target } from "../engine/node.ts";
import { checkPath } from "../formats/entry.ts";
import { diffList, formatList, parseList } from "../formats/filelist.ts";
import { scanTree, type Ownership } from "../tree/scan.ts";
import { asFs } from "./fs.ts";

/** The full file list of a tree. */
export function files(tree: Node | string): Node {
  const fsNode = asFs(tree);
  return target(`${fsNode.name}.files`, async (ctx) => {
    const result = await ctx.result(fsNode);
    const entries = scanTree(result.path!, (result.value as Ownership | null) ?? undefined);
    for (const entry of entries) checkPath(entry.path);
    fs.writeFileSync(ctx.out, formatList(entries));
  }, { kind: "files", options: { fs: fsNode } });
}

/** The entries of a layer: all of `tree`, or only what differs from `diffbase`. */
export function list(tree: Node | string, diffbase?: Node | string): Node {
  const fsNode = asFs(tree);
  const baseNode = diffbase === undefined ? undefined : asFs(diffbase);
  // Declared now, not inside the builder: a no-op run must find them in the registry.
  const currentFiles = files(fsNode);
  const baseFiles = baseNode && files(baseNode);
  return target(`${fsNode.name}.list`, async (ctx) => {
    const current = parseList(fs.readFileSync(await ctx.need(currentFiles), "utf8")).entries;
    if (!baseFiles) return void fs.writeFileSync(ctx.out, formatList(current));
    const base = parseList(fs.readFileSync(await ctx.need(baseFiles), "utf8")).entries;
    const { changed, deleted } = diffList(base, current);
    fs.writeFileSync(ctx.out, formatList(changed, deleted));
  }, { kind: "list", options: { fs: fsNode, diffbase: baseNode ?? null } });
}
