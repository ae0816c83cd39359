/**
 * run.local(fs): the cookbook's default.runlocal.do, `unshare -r chroot DIR /init`.
 * stdout becomes the target's output, stderr goes to its log, a failing /init fails the
 * target with its exit code. The run sees a throw-away overlay over the tree's layers
 * (a snapshot's own directory over its base's), so the built trees are never modified.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CommandError, CrecipeError } from "../engine/errors.ts";
import { type Node, target } from "../engine/node.ts";
import { requireTool } from "../host.ts";
import { $ } from "../runtime.ts";
import { asFs } from "../targets/fs.ts";
import { materialize } from "../tree/copy.ts";
import { TreeView } from "../tree/view.ts";

/** What run.local runs. */
export interface LocalOptions {
  /** The program to run inside (default /init) and its arguments. */
  command?: string[];
  /** Mount the root read-only: writes fail inside (default: writable, thrown away). */
  readOnly?: boolean;
}

const USERNS_FIX =
  "enable unprivileged user namespaces: sudo sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000";

export function local(tree: Node | string, options: LocalOptions = {}): Node {
  const fsNode = asFs(tree);
  const command = options.command ?? ["/init"];
  const readOnly = Boolean(options.readOnly);
  return target(`${fsNode.name}.runlocal`, async (ctx) => {
    const view = await TreeView.open(ctx, fsNode);
    await requireTool("unshare", ctx.name);
    const upper = path.join(ctx.tmp, "upper");
    const work = path.join(ctx.tmp, "work");
    const merged = path.join(ctx.tmp, "merged");
    const mounted = path.join(ctx.tmp, "mounted");
    for (const d of [upper, work, merged]) fs.mkdirSync(d);
    // Layers are named relative to the out dir: the mount option has no room for long paths.
    const lowers = view.dirs.map((d) => path.relative(ctx.outDir, d)).join(":");
    // $1 out dir, $2 lowers, $3 upper, $4 work, $5 merged, $6 marker, $7 output, then the command.
    const script = 'cd "$1" && mount -t overlay overlay -o "lowerdir=$2,upperdir=$3,workdir=$4" "$5" || exit 97; : > "$6"; ' +
      (readOnly ? 'mount -o remount,ro "$5" || exit 96; ' : "") +
      'root=$5; out=$7; shift 7; exec chroot "$root" "$@" > "$out"';
    const overlay = await $({ nothrow: true })`unshare -rm sh -c ${script} sh ${ctx.outDir} ${lowers} ${upper} ${work} ${merged} ${mounted} ${ctx.out} ${command}`;
    if (overlay.exitCode === 0) return;
    if (fs.existsSync(mounted)) throw new CommandError(overlay.exitCode, { signal: overlay.signal ?? undefined });
    if (/unshare failed/.test(overlay.stderr)) {
      throw new CrecipeError(`user namespaces are disabled: unshare -r failed (${overlay.stderr.trim()})`, { target: ctx.name, fix: USERNS_FIX });
    }
    if (readOnly) throw new CrecipeError("a read-only run needs overlayfs, which could not be mounted here", { target: ctx.name, fix: "run it without { readOnly: true } (on a copy), or on Linux ≥ 5.11" });
    // No overlayfs here (nested in a container, old kernel): run on a copy instead.
    ctx.log("overlayfs is not available; running on a copy of the tree");
    const copy = path.join(ctx.tmp, "copy");
    fs.mkdirSync(copy);
    materialize(view.dirs, copy);
    const result = await $({ nothrow: true })`unshare -r chroot ${copy} ${command} > ${ctx.out}`;
    if (result.exitCode !== 0) throw new CommandError(result.exitCode, { signal: result.signal ?? undefined });
  }, { kind: "runlocal", options: readOnly ? { fs: fsNode, command, readOnly } : { fs: fsNode, command }, derived: true });
}
