/**
 * bundle(image | fs): an OCI runtime bundle, out/NAME.bundle/ = config.json + rootfs/,
 * what runc, crun and systemd-nspawn run (`runc run --bundle out/simple.bundle ID`).
 *
 * rootfs/ of an image is its layers applied in order (the layer tars the image directory
 * links to), whiteouts honoured: `.wh.NAME` deletes, `.wh..wh..opq` empties a directory
 * of what lower layers put there. rootfs/ of an fs is its merged tree (a snapshot's layers
 * as overlayfs merges them). Either way it is a copy: editing it never touches out/NAME/.
 * The mount points a runtime mounts on (proc, dev, sys, tmp) are made in it, so no run
 * has to create them in the bundle.
 *
 * Owners. Built by an ordinary user, every file is that user's (nothing else is possible
 * without privilege), and config.json maps the container's root to that user, as
 * `runc spec --rootless` does: inside, every file is root's, whatever the layers or the
 * tree's metadata record. Built by root, the recorded owners, device nodes and extended
 * attributes (the tree's metadata, the layers' tar headers) are applied to rootfs/, and
 * config.json has no user namespace: a runtime run as root sees the owners the image has.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CrecipeError } from "../engine/errors.ts";
import { sha256Hex, stableStringify } from "../engine/hash.ts";
import { removeTree } from "../engine/io.ts";
import { type Node, target } from "../engine/node.ts";
import type { BuildContext } from "../engine/types.ts";
import { unescapePath } from "../formats/entry.ts";
import { MEDIA } from "../formats/oci.ts";
import { DEFAULT_ENV, hostnameOf, runtimeConfig } from "../formats/runtime-spec.ts";
import { childProcess } from "../runtime.ts";
import { materialize } from "../tree/copy.ts";
import { emptyMeta, type TreeMeta } from "../tree/meta.ts";
import { untar } from "../tree/untar.ts";
import { TreeView } from "../tree/view.ts";
import { asFs } from "./fs.ts";
import type { ImageValue } from "./image.ts";

/** What config.json runs, when not what the image says. */
export interface BundleOptions {
  /** The program and its arguments (default: the image's entrypoint + cmd; /init for an fs). */
  command?: string[];
  /** KEY=value strings (default: the image's env; PATH for an fs). */
  env?: string[];
  /** Working directory (default: the image's, else /). */
  cwd?: string;
}

/** What a bundle target's value says. */
export interface BundleValue {
  /** Built by an ordinary user: the container's root is that user (uid, gid below). */
  rootless: boolean;
  /** The uid root in the container is mapped to (0 when built by root). */
  uid: number;
  /** The gid root in the container is mapped to. */
  gid: number;
  /** The program config.json runs. */
  args: string[];
}

/** The mount points a runtime mounts on: made in rootfs/ so no run writes to the bundle. */
const MOUNT_POINTS: [string, number][] = [["proc", 0o555], ["dev", 0o755], ["sys", 0o555], ["tmp", 0o1777]];

/**
 * An OCI runtime bundle of an image or an fs.
 *
 * ```ts
 * export const simpleBundle = bundle(simpleImage);   // out/simple.bundle/{config.json,rootfs/}
 * export default run.runc(simpleBundle);
 * ```
 */
export function bundle(source: Node | string, options: BundleOptions = {}): Node<BundleValue> {
  const node = typeof source === "string" ? asFs(source) : source;
  const fromImage = node.kind === "image";
  const name = `${node.name.replace(/\.image$/, "")}.bundle`;
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const rootless = uid !== 0;
  return target(name, async (ctx) => {
    const built = await ctx.result(node);
    const rootfs = path.join(ctx.out, "rootfs");
    fs.mkdirSync(rootfs, { recursive: true });
    let meta: TreeMeta;
    let run: { args: string[]; env: string[]; cwd: string; user?: string };
    if (fromImage) {
      const image = readImage(ctx, built.path!, built.value as ImageValue);
      meta = await applyLayers(ctx, image.layers, rootfs);
      run = {
        args: [...(image.config.Entrypoint ?? []), ...(image.config.Cmd ?? [])],
        env: image.config.Env ?? DEFAULT_ENV,
        cwd: image.config.WorkingDir || "/",
        user: image.config.User,
      };
    } else {
      const view = await TreeView.open(ctx, node);
      ctx.noteCommand(`copy ${view.dirs.join(" over ")} → rootfs/`);
      materialize(view.dirs, rootfs);
      meta = view.meta;
      run = { args: ["/init"], env: DEFAULT_ENV, cwd: "/" };
    }
    for (const [dir, mode] of MOUNT_POINTS) {
      const at = path.join(rootfs, dir);
      if (fs.lstatSync(at, { throwIfNoEntry: false })) continue;
      fs.mkdirSync(at);
      fs.chmodSync(at, mode);
    }
    if (rootless) say(ctx, meta);
    else applyMeta(ctx, rootfs, meta);
    const args = options.command ?? (run.args.length ? run.args : ["/init"]);
    const user = run.user ? resolveUser(ctx, rootfs, run.user) : { uid: 0, gid: 0 };
    if (rootless && (user.uid !== 0 || user.gid !== 0)) {
      throw new CrecipeError(`${ctx.name}: the image runs as ${run.user}, but a bundle built by an ordinary user maps only root (to you)`, {
        target: ctx.name,
        fix: "build the bundle as root, or give the image no user (config.user)",
      });
    }
    const config = runtimeConfig({
      args,
      env: options.env ?? run.env,
      cwd: options.cwd ?? run.cwd,
      user,
      idMap: rootless ? { uid, gid } : undefined,
      hostname: hostnameOf(name.replace(/\.bundle$/, "")),
    });
    fs.writeFileSync(path.join(ctx.out, "config.json"), config, { mode: 0o644 });
    fs.chmodSync(ctx.out, 0o755);
    // The bundle is a function of its source's stamp and its config: no need to hash rootfs/.
    ctx.trustOutputHash(`bundle:${sha256Hex(stableStringify([built.stamp, sha256Hex(config), rootless]))}`);
    return { rootless, uid: rootless ? uid : 0, gid: rootless ? gid : 0, args };
  }, { kind: "bundle", options: { source: node, command: options.command ?? null, env: options.env ?? null, cwd: options.cwd ?? null, builder: rootless ? `uid ${uid}:${gid}` : "root" }, derived: true });
}

interface ImageConfigDoc {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
}

/** The image's run config and its layer tars (base first), read from its OCI layout. */
function readImage(ctx: BuildContext, dir: string, value: ImageValue): { config: ImageConfigDoc; layers: string[] } {
  const blob = (digest: string) => path.join(dir, "blobs", "sha256", digest.replace(/^sha256:/, ""));
  // The manifest and the config say what runs: their bytes must be those their names say.
  const document = (digest: string) => {
    const bytes = fs.readFileSync(blob(digest));
    if (sha256Hex(bytes) !== digest.replace(/^sha256:/, "")) {
      throw new CrecipeError(`${ctx.name}: ${path.relative(ctx.outDir, blob(digest))} does not hold the bytes its name says`, {
        target: ctx.name,
        fix: "something edited the image by hand: run crecipe again with --check, which finds and rebuilds it",
      });
    }
    return JSON.parse(bytes.toString("utf8"));
  };
  const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));
  const manifest = document(value.manifest ?? index.manifests[0].digest);
  const config = document(manifest.config.digest);
  for (const layer of manifest.layers) {
    if (layer.mediaType !== MEDIA.layer && layer.mediaType !== "application/vnd.docker.image.rootfs.diff.tar") {
      throw new CrecipeError(`${ctx.name}: layer ${layer.digest} is ${layer.mediaType}; a bundle is made from uncompressed tar layers`, { target: ctx.name });
    }
  }
  return { config: config.config ?? {}, layers: manifest.layers.map((l: { digest: string }) => blob(l.digest)) };
}

/** Unpack `layers` in order into `rootfs`, whiteouts honoured; what they record (owners, devices) comes back. */
async function applyLayers(ctx: BuildContext, layers: string[], rootfs: string): Promise<TreeMeta> {
  const meta = emptyMeta();
  const dirModes: [Buffer, number][] = [];
  for (const layer of layers) {
    ctx.noteCommand(`unpack ${path.basename(layer)} → rootfs/`);
    await untar(layer, rootfs, meta, { whiteouts: true, dirModes });
  }
  // A directory's mode is its last layer's; applied deepest first, once every layer is in.
  const modes = new Map<string, [Buffer, number]>();
  for (const [rel, mode] of dirModes) modes.set(rel.toString("latin1"), [rel, mode]);
  for (const [rel, mode] of [...modes.values()].reverse()) {
    const dir = rel.length ? Buffer.concat([Buffer.from(rootfs + "/"), rel]) : Buffer.from(rootfs);
    if (fs.lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) fs.chmodSync(dir, mode);
  }
  return meta;
}

/** An ordinary user cannot give files other owners or make devices: say what the bundle lacks. */
function say(ctx: BuildContext, meta: TreeMeta): void {
  const owners = Object.keys(meta.owners).length;
  const devices = Object.keys(meta.devices).filter((k) => !k.startsWith("dev/")).length;
  if (owners) ctx.log(`${owners} recorded owner(s) not applied: built rootless, every file is yours, root's inside the container`);
  if (devices) ctx.warn(`${devices} device node(s) outside /dev are empty files in this bundle: only root can make device nodes (build the bundle as root)`);
}

/** As root: the recorded owners, device nodes and extended attributes, applied to rootfs/. */
function applyMeta(ctx: BuildContext, rootfs: string, meta: TreeMeta): void {
  const host = (key: string) => Buffer.concat([Buffer.from(rootfs + "/"), unescapePath(key)]);
  for (const [key, device] of Object.entries(meta.devices)) {
    const at = host(key);
    removeTree(at);
    const r = childProcess().spawnSync("mknod", ["-m", device.mode.toString(8), at.toString(), device.type === "char" ? "c" : "b", String(device.major), String(device.minor)], { encoding: "utf8" });
    if (r.status !== 0) throw new CrecipeError(`${ctx.name}: cannot make the device node ${key}: ${r.stderr.trim()}`, { target: ctx.name });
  }
  for (const [key, [uid, gid]] of Object.entries(meta.owners)) {
    const at = host(key);
    const st = fs.lstatSync(at, { throwIfNoEntry: false });
    if (!st) continue;
    fs.lchownSync(at, uid, gid);
    // chown clears setuid and setgid: the recorded mode is the one on disk before.
    if (!st.isSymbolicLink() && st.mode & 0o6000) fs.chmodSync(at, st.mode & 0o7777);
  }
  // Last: a chown drops a file's capability.
  const dump: string[] = [];
  for (const [key, attrs] of Object.entries(meta.xattrs ?? {})) {
    const st = fs.lstatSync(host(key), { throwIfNoEntry: false });
    if (!st || st.isSymbolicLink()) continue;
    dump.push(`# file: ${octalEscape(unescapePath(key))}`, ...Object.entries(attrs).map(([n, hex]) => `${n}=0x${hex}`), "");
  }
  if (dump.length) {
    const r = childProcess().spawnSync("setfattr", ["--restore=-"], { cwd: rootfs, input: dump.join("\n") + "\n", encoding: "utf8" });
    if (r.status !== 0) throw new CrecipeError(`${ctx.name}: cannot set extended attributes in rootfs/: ${(r.stderr || r.error?.message || "").trim()}`, { target: ctx.name, fix: "sudo apt-get install attr" });
  }
}

/** A path as getfattr writes it in a dump (and setfattr --restore reads it): odd bytes as \ooo. */
function octalEscape(p: Buffer): string {
  let out = "";
  for (const byte of p) out += byte <= 0x20 || byte >= 0x7f || byte === 0x5c ? "\\" + byte.toString(8).padStart(3, "0") : String.fromCharCode(byte);
  return out;
}

/** "uid[:gid]" or "name[:group]", names looked up in the rootfs's /etc/passwd and /etc/group. */
function resolveUser(ctx: BuildContext, rootfs: string, spec: string): { uid: number; gid: number } {
  const [userPart, groupPart] = spec.split(":");
  const table = (file: string) => {
    try {
      return fs.readFileSync(path.join(rootfs, "etc", file), "utf8").split("\n").map((l) => l.split(":"));
    } catch {
      return [];
    }
  };
  const fail = (what: string) => new CrecipeError(`${ctx.name}: the image's user ${JSON.stringify(spec)}: ${what}`, { target: ctx.name, fix: "use numeric ids (config.user: \"1000:1000\")" });
  let uid: number;
  let gid = 0;
  if (/^\d+$/.test(userPart)) uid = Number(userPart);
  else {
    const row = table("passwd").find((r) => r[0] === userPart);
    if (!row) throw fail(`no ${userPart} in /etc/passwd`);
    [uid, gid] = [Number(row[2]), Number(row[3])];
  }
  if (groupPart !== undefined) {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const row = table("group").find((r) => r[0] === groupPart);
      if (!row) throw fail(`no ${groupPart} in /etc/group`);
      gid = Number(row[2]);
    }
  }
  return { uid, gid };
}

/** @internal The paths of a bundle's parts. */
export const bundlePaths = (dir: string) => ({ config: path.join(dir, "config.json"), rootfs: path.join(dir, "rootfs") });
