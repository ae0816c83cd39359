/**
 * files(fs): every path of a tree with type, mode, owner, size and hash (NAME.files).
 * list(fs, diffbase): what a layer holds, the entries new or changed against the
 * diffbase plus the paths it deleted (NAME.list), as in the cookbook's default.list.do.
 */
import * as fs from "node:fs";
import { type Node, target } from "../engine/node.ts";
import { checkPath, type Entry } from "../formats/entry.ts";
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
    fs.writeFileSync(ctx.out, formatList(changed, opaque(base, current, deleted)));
  }, { kind: "list", options: { fs: fsNode, diffbase: baseNode ?? null } });
}

export const OPAQUE = ".wh..wh..opq";

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
