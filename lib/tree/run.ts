/**
 * Running a command inside a tree being built (`root.run`), the RUN line of a Dockerfile.
 * The command runs as root in a user namespace (root is not needed), chrooted into the
 * tree: for a snapshot, into an overlayfs mount of the tree's own directory (upper) over
 * its base's layers, so everything it writes lands in the upper directory and the base
 * is never written to; /proc, /dev and /sys are mounted for it when the tree has them.
 *
 * Afterwards the upper directory is made plain again: a directory the kernel marked
 * opaque (an extended attribute, `user.overlay.opaque`) becomes an ordinary directory
 * plus a whiteout per child of the base's, which is what crecipe's readers understand.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CommandError } from "../engine/errors.ts";
import { removeTree } from "../engine/io.ts";
import type { BuildContext } from "../engine/types.ts";
import { requireTool } from "../host.ts";
import { $, childProcess } from "../runtime.ts";
import { escapePath } from "../formats/entry.ts";
import { readXattrs, unquote, type Xattrs } from "../engine/xattrs.ts";

/** How root.run runs its command. */
export interface RunOptions {
  /** Environment of the command (besides PATH, HOME=/root, LC_ALL=C). */
  env?: Record<string, string>;
  /** Working directory inside the tree (needs the tree's /bin/sh). */
  cwd?: string;
  /** What the command reads on stdin. */
  input?: string | Buffer;
}

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Run `argv` chrooted into the tree whose own directory is `upper`, over `lowers` (top
 * first; none for a tree that stands alone). Output goes to the target's log.
 */
/** Another tree mounted read-only into the run (root.runWith): its layers, and where, relative to the tree. */
export interface ToolMount {
  layers: readonly string[];
  at: string;
}

export async function runInTree(ctx: BuildContext, upper: string, lowers: readonly string[], argv: string[], options: RunOptions = {}, tools?: ToolMount): Promise<{ stdout: string; stderr: string; opaque: Buffer[]; xattrs: Map<string, Xattrs> }> {
  await requireTool("unshare", ctx.name);
  const scratch = fs.mkdtempSync(path.join(ctx.tmp, "run-"));
  const merged = path.join(scratch, "merged");
  const work = path.join(scratch, "work");
  fs.mkdirSync(merged);
  fs.mkdirSync(work);
  // Lower layers are named relative to the out dir: the mount option has no room for long
  // paths. A comma or colon in a path is escaped, as overlayfs reads its options.
  const escaped = (p: string) => p.replace(/[\\,:]/g, "\\$&");
  const overlayOptions = lowers.length ? `userxattr,lowerdir=${lowers.map((d) => escaped(path.relative(ctx.outDir, d))).join(":")},upperdir=${escaped(upper)},workdir=${escaped(work)}` : "";
  const toolsOption = (tools?.layers ?? []).map((d) => path.relative(ctx.outDir, d)).join(":"); // target names: no "," or ":"
  // $1 out dir, $2 the overlay's mount options ("" for no lower layers; they name the work
  // dir), $3 upper, $4 merged, $5 cwd, $6 tool layers ("" for none), $7 where they go, then
  // the command.
  const script = [
    'cd "$1"',
    'if [ -n "$2" ]; then mount -t overlay overlay -o "$2" "$4" || exit 97; root=$4; else root=$3; fi',
    '[ -d "$root/proc" ] && mount -t proc proc "$root/proc"',
    '[ -d "$root/dev" ] && mount --rbind /dev "$root/dev"',
    '[ -d "$root/sys" ] && mount --rbind /sys "$root/sys"',
    // One layer is bound read-only; a stack is a read-only overlay (lower layers only).
    'if [ -n "$6" ]; then case "$6" in *:*) mount -t overlay overlay -o "lowerdir=$6" "$root/$7" ;; *) mount --bind "$6" "$root/$7" && mount -o remount,bind,ro "$root/$7" ;; esac || exit 98; fi',
    // The command's PATH (which may name only the tools' directories) is set last: the lines above need the host's.
    'cwd=$5; shift 7; chroot=$(command -v chroot); PATH=$CRECIPE_COMMAND_PATH; unset CRECIPE_COMMAND_PATH',
    'if [ -n "$cwd" ]; then exec "$chroot" "$root" /bin/sh -c \'cd "$1" && shift && exec "$@"\' sh "$cwd" "$@"; fi',
    'exec "$chroot" "$root" "$@"',
  ].join("\n");
  const env = { HOME: "/root", LC_ALL: "C", ...options.env, PATH, CRECIPE_COMMAND_PATH: options.env?.PATH ?? PATH };
  const rootless = process.getuid?.() !== 0;
  const unshare = rootless ? ["unshare", "-rmpf"] : ["unshare", "-mpf"];
  const result = await $({ nothrow: true, env: { ...process.env, ...env }, input: options.input })`${unshare} sh -c ${script} sh ${ctx.outDir} ${overlayOptions} ${upper} ${merged} ${options.cwd ?? ""} ${toolsOption} ${tools?.at ?? ""} ${argv}`;
  removeTree(scratch); // overlayfs leaves work/work with mode 000
  if (result.exitCode === 97) {
    throw new CommandError(97, { command: argv.join(" "), fix: "overlayfs could not be mounted in a user namespace here (Linux ≥ 5.11 allows it); build the fs with from(base, { snapshot: false })" });
  }
  if (result.exitCode === 98 && tools) {
    throw new CommandError(98, { command: argv.join(" "), fix: `the tools could not be mounted at /${tools.at} (see the log); bind mounts in a user namespace need util-linux's mount` });
  }
  if (result.exitCode !== 0) throw new CommandError(result.exitCode, { command: argv.join(" "), signal: result.signal ?? undefined });
  const { opaque, xattrs } = await afterRun(ctx, upper);
  return { stdout: result.stdout, stderr: result.stderr, opaque, xattrs };
}

/**
 * What the command left in `upper` that a plain directory cannot show: directories the
 * kernel marked opaque, each replaced by a fresh directory holding the same entries (the
 * caller then hides the base's children there with whiteouts), and the extended
 * attributes the command set (setcap, setfattr), to record in the tree's metadata.
 */
async function afterRun(ctx: BuildContext, upper: string): Promise<{ opaque: Buffer[]; xattrs: Map<string, Xattrs> }> {
  await requireTool("getfattr", ctx.name);
  const found = readXattrs([upper], { recursive: true });
  const opaque: Buffer[] = [];
  const xattrs = new Map<string, Xattrs>();
  const prefix = upper + "/";
  const marked = childProcess().spawnSync("getfattr", ["-R", "--absolute-names", "-h", "-d", "-m", "^user\\.overlay\\.opaque$", upper], { maxBuffer: 1 << 26 });
  for (const line of marked.stdout.toString("latin1").split("\n")) {
    if (!line.startsWith("# file: ")) continue;
    const host = unquote(line.slice(8));
    if (!host.subarray(0, prefix.length).equals(Buffer.from(prefix))) continue;
    const rel = host.subarray(prefix.length);
    const st = fs.lstatSync(host);
    const aside = Buffer.concat([host, Buffer.from(".crecipe-opaque")]);
    fs.renameSync(host, aside);
    fs.mkdirSync(host);
    for (const name of fs.readdirSync(aside, { encoding: "buffer" })) {
      fs.renameSync(Buffer.concat([aside, Buffer.from("/"), name]), Buffer.concat([host, Buffer.from("/"), name]));
    }
    fs.rmdirSync(aside);
    fs.chmodSync(host, st.mode & 0o7777);
    opaque.push(rel);
  }
  for (const [host, attrs] of found) if (host.startsWith(prefix)) xattrs.set(escapePath(Buffer.from(host.slice(prefix.length))), attrs);
  return { opaque, xattrs };
}
