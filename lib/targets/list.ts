/**
 * files(fs): every path of a tree with type, mode, owner, size and hash (NAME.files).
 * list(fs, diffbase): what a layer holds, the entries new or changed against the
 * diffbase plus the paths it deleted (NAME.list), as in the cookbook's default.list.do.
 * Both come from the trees' manifests: no file is read again.
 */
import { OutputFile } from "../engine/io.ts";
import { type Node, target } from "../engine/node.ts";
import type { BuildContext } from "../engine/types.ts";
import * as fs from "node:fs";
import { checkPath } from "../formats/entry.ts";
import { formatLine, formatList } from "../formats/filelist.ts";
import { changes } from "../tree/diff.ts";
import { TreeView } from "../tree/view.ts";
import { asFs } from "./fs.ts";

/** The full file list of a tree. */
export function files(tree: Node | string): Node {
  const fsNode = asFs(tree);
  return target(`${fsNode.name}.files`, async (ctx) => {
    writeList(ctx.out, await TreeView.open(ctx, fsNode));
  }, { kind: "files", shared: true, options: { fs: fsNode }, derived: true });
}

/** The entries of a layer: all of `tree`, or only what differs from `diffbase`. */
export function list(tree: Node | string, diffbase?: Node | string): Node {
  const fsNode = asFs(tree);
  const baseNode = diffbase === undefined ? undefined : asFs(diffbase);
  return target(`${fsNode.name}.list`, async (ctx) => {
    const view = await TreeView.open(ctx, fsNode);
    if (!baseNode) return writeList(ctx.out, view);
    const { changed, deleted } = await layerChanges(ctx, view, baseNode);
    const out = new OutputFile(ctx.out);
    out.writeText(formatList(changed, deleted));
    out.close();
  }, { kind: "list", shared: true, options: { fs: fsNode, diffbase: baseNode ?? null }, derived: variantOf(fsNode, baseNode, "list") });
}

/**
 * The name a list or layer takes when its cookbook name (libs.layer) is taken by the same
 * fs on another diffbase: it says the diffbase (libs@simple.layer), or that it has none
 * (libs.full.layer).
 */
export function variantOf(fsNode: Node, baseNode: Node | undefined, suffix: string): string {
  return baseNode ? `${fsNode.name}@${baseNode.name}.${suffix}` : `${fsNode.name}.full.${suffix}`;
}

/** What a layer of `view` over `diffbase` holds. */
export async function layerChanges(ctx: BuildContext, view: TreeView, diffbase: Node) {
  return changes(view, await TreeView.open(ctx, diffbase));
}

/** The whole list of a tree: its manifest's list when that is one already, else line by line. */
function writeList(file: string, view: TreeView): void {
  const plain = view.plainList();
  if (plain) return fs.copyFileSync(plain, file);
  const out = new OutputFile(file);
  try {
    for (const entry of view.entries()) {
      checkPath(entry.path);
      out.writeText(formatLine(entry));
    }
  } catch (error) {
    out.abandon();
    throw error;
  }
  out.close();
}
