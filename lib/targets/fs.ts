/** fs(name, builder): a directory target out/NAME/, built through a Root handle. */
import * as fs from "node:fs";
import { type Node, resolveTarget, target } from "../engine/node.ts";
import type { TreeMeta } from "../tree/meta.ts";
import { type Root, TreeRoot } from "../tree/root.ts";

/** What fills an fs: it gets the tree's Root handle. */
export type FsBuilder = (root: Root) => Promise<unknown> | unknown;

/**
 * A filesystem tree. The builder fills `root`; the tree is renamed into out/NAME/ only
 * when it succeeds. `fs(name)` without a builder returns the fs declared under that name.
 * A tree that starts with `root.from(base)` is a snapshot: out/NAME/ holds only what it
 * changed (see tree/root.ts).
 *
 * ```ts
 * export const simple = fs("simple", async (root) => {
 *   await root.copyIn([hello, "/bin/sh"], "/bin/");
 *   await root.symlink("bin/hello", "/init");
 * });
 * ```
 */
export function fs_(name: string, builder?: FsBuilder, options: { precious?: boolean; description?: string; shared?: boolean } = {}): Node<TreeMeta> {
  if (!builder) return resolveTarget(name) as Node<TreeMeta>;
  return target(name, async (ctx) => {
    fs.mkdirSync(ctx.out, { mode: 0o755 });
    fs.chmodSync(ctx.out, 0o755);
    const root = new TreeRoot(ctx, ctx.out);
    await builder(root);
    return root.finish();
  }, { kind: "fs", shared: true, ...options, options: builder.toString(), source: builder });
}

/** Accept an fs node or the name of one. */
export function asFs(value: Node | string): Node<TreeMeta> {
  return resolveTarget(value) as Node<TreeMeta>;
}
