/**
 * files(fs): every path of a tree with type, mode, owner, size and hash (NAME.files).
 * list(fs, diffbase): what a layer holds, the entries new or changed against the
 * diffbase plus the paths it deleted (NAME.list), as in the cookbook's default.list.do.
 * Both come from the trees' manifests: no file is read again.
 */
import { OutputFile } from "../engine/io.ts";
import { type Node, target } from "../engine/node.ts";
import type { BuildContext } from "../engine/types.ts";
import { checkPath, comparePaths, escapePath, FormatError } from "../formats/entry.ts";
import { formatLine, formatList } from "../formats/filelist.ts";
import { changes } from "../tree/diff.ts";
import { TreeView } from "../tree/view.ts";
import { asFs } from "./fs.ts";

/** The full file list of a tree. */
export function files(tree: Node | string): Node {
  const fsNode = asFs(tree);
  return target(`${fsNode.name}.files`, async (ctx) => {
    writeEntries(ctx.out, (await TreeView.open(ctx, fsNode)).entries());
  }, { kind: "files", options: { fs: fsNode } });
}

/** The entries of a layer: all of `tree`, or only what differs from `diffbase`. */
export function list(tree: Node | string, diffbase?: Node | string): Node {
  const fsNode = asFs(tree);
  const baseNode = diffbase === undefined ? undefined : asFs(diffbase);
  return target(`${fsNode.name}.list`, async (ctx) => {
    const view = await TreeView.open(ctx, fsNode);
    if (!baseNode) return writeEntries(ctx.out, view.entries());
    const { changed, deleted } = await layerChanges(ctx, view, baseNode);
    const out = new OutputFile(ctx.out);
    out.writeText(formatList(changed, deleted));
    out.close();
  }, { kind: "list", options: { fs: fsNode, diffbase: baseNode ?? null } });
}

/** What a layer of `view` over `diffbase` holds. */
export async function layerChanges(ctx: BuildContext, view: TreeView, diffbase: Node) {
  return changes(view, await TreeView.open(ctx, diffbase));
}

/** Write a list, streamed: each line checked, in order, once. */
function writeEntries(file: string, entries: Iterable<{ path: Buffer } & Parameters<typeof formatLine>[0]>): void {
  const out = new OutputFile(file);
  try {
    let previous: Buffer | undefined;
    for (const entry of entries) {
      checkPath(entry.path);
      if (previous && comparePaths(previous, entry.path) >= 0) throw new FormatError(`path "${escapePath(entry.path)}" is out of order or repeated`);
      previous = entry.path;
      out.writeText(formatLine(entry));
    }
  } catch (error) {
    out.abandon();
    throw error;
  }
  out.close();
}
