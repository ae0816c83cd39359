/**
 * The handle an fs() builder gets: copy host files and other targets in, write, link,
 * remove, record owners. Paths are resolved as inside a chroot: a symlink in the tree
 * that points at /usr/bin points at the tree's usr/bin, never at the host's.
 *
 * After `from(base)` the tree is a snapshot: its directory is an overlayfs-style upper
 * directory that holds only what this builder changes, over the base's (read-only)
 * layers. Nothing is copied up front; a file is copied up when it is changed, a
 * deletion is a whiteout (a char device 0:0), so the base is never written to.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { BuildContext } from "../engine/types.ts";
import { readlinkBytes, removeTree } from "../engine/io.ts";
import { CrecipeError } from "../engine/errors.ts";
import { isNode, type Node, resolveTarget } from "../engine/node.ts";
import { walkSorted } from "../engine/walk.ts";
import { escapePath, unescapePath } from "../formats/entry.ts";
import { childProcess } from "../runtime.ts";
import { sharedLibraries } from "./elf.ts";
import { isWhiteout, locate, readMergedDir, walkMerged, type Found } from "./layers.ts";
import { asMeta, emptyMeta, type TreeMeta } from "./meta.ts";
import { type CopiedLinks, copyHost, materialize } from "./copy.ts";
import { type RunOptions, runInTree, type ToolMount } from "./run.ts";
import { aclGroupBits, readXattrs } from "../engine/xattrs.ts";
import { TreeView } from "./view.ts";

/** What copyIn copies: a host path, or a target (its output). */
export type Source = string | Node;

/**
 * The handle an fs() builder gets to fill its tree. Paths are inside the tree ("/bin/sh"
 * and "bin/sh" are the same) and resolved as a chroot would: a symlink in the tree leads
 * to a place in the tree, never on the host. Nothing it does writes outside the tree.
 *
 * ```ts
 * export const app = fs("app", async (root) => {
 *   await root.from(base);                          // a snapshot of base: nothing copied
 *   await root.copyIn([hello, "/bin/busybox"], "/bin/");
 *   await root.write("/etc/motd", "hello\n");
 *   await root.run(["/bin/busybox", "adduser", "-D", "app"]);
 *   await root.remove("/usr/share/doc", { recursive: true });
 * });
 * ```
 */
export interface Root {
  /** The build context of the fs target (ctx.read, ctx.dependOn, ctx.log). */
  readonly ctx: BuildContext;
  /** The tree's own directory on the host (for a snapshot: only what this fs changed). */
  readonly dir: string;
  /** What the tree records besides its files: owners, devices, extended attributes, its base. */
  readonly meta: TreeMeta;
  /**
   * The host path of `p` inside the tree, to work on with other tools. A symlink as its
   * last part needs `{ followLast: true }` (what it points to) or `{ followLast: false }`
   * (the link itself, not to write through). In a snapshot what it names (a file, or a
   * directory with all it holds) is copied up first, so changing it never changes the
   * base; removing anything there is recorded as a deletion.
   */
  path(p: string, options?: { followLast?: boolean }): string;
  /** Whether `p` exists in the tree (a dangling symlink exists). */
  exists(p: string): boolean;
  /** Create a directory and its parents (mode default 0755; umask never leaks in). */
  mkdir(p: string, mode?: number): Promise<void>;
  /** Write a file (mode default 0644), replacing what stands at `p`. */
  write(p: string, content: string | Uint8Array, mode?: number): Promise<void>;
  /** `ln -s target linkPath` inside the tree. */
  symlink(target: string, linkPath: string): Promise<void>;
  /** Change a file's mode. */
  chmod(p: string, mode: number): Promise<void>;
  /** Remove `p` (a directory only with `recursive`); in a snapshot, a whiteout hides the base's. */
  remove(p: string, options?: { recursive?: boolean }): Promise<void>;
  /** Record an owner: layers and initrds carry it; the disk does not need root. */
  chown(p: string, uid: number, gid: number): Promise<void>;
  /** Record a device node (an empty file stands for it on disk). */
  mknod(p: string, type: "char" | "block", major: number, minor: number, mode?: number): Promise<void>;
  /** Record an extended attribute (layers carry it as a pax SCHILY.xattr record). */
  xattr(p: string, name: string, value: string | Uint8Array): Promise<void>;
  /**
   * Copy host paths or targets' outputs into the tree (`dest` ending in "/" is a directory
   * to copy into), as `cp -a` does; a host symlink brings what it points to along. Host
   * paths become dependencies; their extended attributes come along.
   */
  copyIn(sources: Source | readonly Source[], dest: string): Promise<void>;
  /** Start from another fs: a snapshot of it when the tree is still empty, else a copy of its files. */
  from(other: Node | string, options?: { snapshot?: boolean }): Promise<void>;
  /** Run a command chrooted in the tree, as root in a user namespace (a Dockerfile's RUN). */
  run(argv: string[], options?: RunOptions): Promise<{ stdout: string; stderr: string }>;
  /** The cookbook's libs.fs.do: the shared libraries every ELF file in the tree loads, copied in. */
  addSharedLibraries(): Promise<string[]>;
}

const SLASH = Buffer.from("/");
const join = (parts: Buffer[]) => parts.length ? Buffer.concat(parts.flatMap((p, i) => (i ? [SLASH, p] : [p]))) : Buffer.alloc(0);
const splitPath = (p: Buffer) => {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i === p.length || p[i] === 0x2f) {
      const part = p.subarray(start, i);
      if (part.length && !(part.length === 1 && part[0] === 0x2e)) parts.push(part);
      start = i + 1;
    }
  }
  return parts;
};
const DOTDOT = Buffer.from("..");

/** The Root crecipe hands to fs() builders. */
export class TreeRoot implements Root {
  /** Owners and device nodes recorded by chown()/mknod(), and the base of a snapshot. */
  readonly meta: TreeMeta = emptyMeta();
  private base?: TreeView;
  /** Paths brought up from the base (their removal by any means is a deletion). */
  private readonly copiedUp = new Set<string>();
  /** Paths deleted from the base whose whiteout is not on disk yet. */
  private readonly hidden = new Set<string>();
  /** Host files copied in setuid/setgid with an owner that is not root (their owner is not carried). */
  private readonly privileged = new Map<string, { host: string; uid: number; gid: number; mode: number }>();

  constructor(readonly ctx: BuildContext, readonly dir: string) {}

  /** The directories to look in, top first: this tree's own, then its base's layers. */
  private get layers(): string[] {
    return this.base ? [this.dir, ...this.base.dirs] : [this.dir];
  }

  private fail(message: string, fix?: string): CrecipeError {
    return new CrecipeError(`${this.ctx.name}: ${message}`, { target: this.ctx.name, fix });
  }

  /**
   * Resolve `p` in the tree as a chroot would (symlinks in the tree lead to places in
   * the tree), returning the relative path. Refuses `..` in `p` itself.
   */
  private resolve(p: string, followLast = false): Buffer {
    const parts = splitPath(Buffer.from(p));
    if (parts.some((x) => x.equals(DOTDOT))) {
      throw this.fail(`path ${JSON.stringify(p)} contains "..": it could escape the tree`, "use a path inside the tree, without ..");
    }
    let resolved: Buffer[] = [];
    let hops = 0;
    const queue = [...parts];
    while (queue.length) {
      const part = queue.shift()!;
      if (part.equals(DOTDOT)) {
        resolved.pop(); // only link targets bring "..": clamped at the root, as in a chroot
        continue;
      }
      const candidate = join([...resolved, part]);
      const found = locate(this.layers, candidate);
      if (found?.st.isSymbolicLink() && (queue.length > 0 || followLast)) {
        if (++hops > 40) throw this.fail(`too many symlinks resolving ${p} in the tree`);
        const link = readlinkBytes(found.host);
        if (link[0] === 0x2f) resolved = [];
        queue.unshift(...splitPath(link));
        continue;
      }
      resolved.push(part);
    }
    return join(resolved);
  }

  private upper(rel: Buffer): Buffer {
    return rel.length ? Buffer.concat([Buffer.from(this.dir), SLASH, rel]) : Buffer.from(this.dir);
  }

  private find(rel: Buffer): Found | undefined {
    return locate(this.layers, rel);
  }

  /**
   * Settle deletions made behind Root's back (a raw rm of a path from `path()`) and
   * those pending: each becomes a whiteout, or, where something new now stands at the
   * path, hides the base's version of it. `scope` (a path, latin1): look only at it and
   * the paths above it (and with `below`, under it), for an operation on that path alone:
   * a raw deletion elsewhere does not change what it does, and run() and finish() look
   * at all. (Checking every copied-up path on every call made 2000 root.path() calls take
   * 17 s, and 2000 root.write() calls into one directory 23 s.)
   */
  private sync(scope?: string, below = false): void {
    if (!this.base) return;
    const keys = scope === undefined ? [...this.copiedUp]
      : below ? [...this.copiedUp].filter((key) => related(key, scope))
      : pathAndAbove(scope).filter((key) => this.copiedUp.has(key)); // without a walk of them all
    for (const key of keys) {
      if (!fs.lstatSync(this.upper(Buffer.from(key, "latin1")), { throwIfNoEntry: false })) {
        this.copiedUp.delete(key);
        this.hidden.add(key);
      }
    }
    if (!this.hidden.size) return;
    const whiteouts: Buffer[] = [];
    for (const key of [...this.hidden].sort()) {
      this.hidden.delete(key);
      const rel = Buffer.from(key, "latin1");
      const parent = fs.lstatSync(this.upper(rel.subarray(0, Math.max(0, rel.lastIndexOf(0x2f)))), { throwIfNoEntry: false });
      if (!parent?.isDirectory()) continue; // an ancestor went too: its whiteout covers this
      const st = fs.lstatSync(this.upper(rel), { throwIfNoEntry: false });
      if (!st) {
        if (locate(this.base.dirs, rel)) whiteouts.push(this.upper(rel));
      } else if (st.isDirectory()) {
        whiteouts.push(...this.opaqueWhiteouts(rel));
      }
    }
    makeWhiteouts(whiteouts, this.ctx.name);
  }

  /** Whiteouts that hide, under upper directory `rel`, every child the base has there. */
  private opaqueWhiteouts(rel: Buffer): Buffer[] {
    const found = locate(this.base!.dirs, rel);
    if (!found?.st.isDirectory()) return [];
    const whiteouts: Buffer[] = [];
    for (const child of readMergedDir(this.base!.dirs, rel)) {
      const childRel = Buffer.concat([rel, SLASH, child.name]);
      const mine = fs.lstatSync(this.upper(childRel), { throwIfNoEntry: false });
      if (!mine) whiteouts.push(this.upper(childRel));
      else if (mine.isDirectory() && child.st.isDirectory()) whiteouts.push(...this.opaqueWhiteouts(childRel));
    }
    return whiteouts;
  }

  /** Make sure the directories above `rel` exist in this tree's own directory (copied up from the base). */
  private prepareParents(rel: Buffer): void {
    const parts = splitPath(rel);
    for (let i = 1; i < parts.length; i++) this.copyUp(join(parts.slice(0, i)), true);
  }

  /**
   * Bring `rel` from the base into this tree's own directory (a directory: itself, not
   * its contents). `links`: base files (device:inode) already brought up under another
   * name, which this one becomes a hard link to.
   */
  private copyUp(rel: Buffer, asParent = false, links?: Map<string, Buffer>): void {
    const own = fs.lstatSync(this.upper(rel), { throwIfNoEntry: false });
    if (own && !isWhiteout(own)) {
      if (asParent && !own.isDirectory()) throw this.fail(`${escapePath(rel)} is not a directory`);
      return;
    }
    if (own) {
      if (!asParent) return;
      // A deleted directory made again: it starts empty, the base's contents stay hidden.
      this.prepareParents(rel);
      fs.unlinkSync(this.upper(rel));
      fs.mkdirSync(this.upper(rel));
      fs.chmodSync(this.upper(rel), 0o755);
      this.hidden.add(rel.toString("latin1"));
      return;
    }
    const found = this.base && locate(this.base.dirs, rel);
    if (!found) return; // not in the base either: whoever wants it there creates it
    if (asParent && !found.st.isDirectory()) throw this.fail(`${escapePath(rel)} is not a directory`);
    this.prepareParents(rel);
    const to = this.upper(rel);
    const mode = found.st.mode & 0o7777;
    if (found.st.isDirectory()) {
      fs.mkdirSync(to);
      fs.chmodSync(to, mode);
    } else if (found.st.isFile()) {
      const id = `${found.st.dev}:${found.st.ino}`;
      const first = found.st.nlink > 1 ? links?.get(id) : undefined;
      if (first) fs.linkSync(first, to);
      else {
        fs.copyFileSync(found.host, to, fs.constants.COPYFILE_FICLONE);
        fs.chmodSync(to, mode);
        if (found.st.nlink > 1) links?.set(id, to);
      }
    } else if (found.st.isSymbolicLink()) {
      fs.symlinkSync(readlinkBytes(found.host), to);
    } else {
      throw this.fail(`${escapePath(rel)} is a special file of the base; it cannot be changed in a snapshot`, "remove it and create it again (root.mknod)");
    }
    this.copiedUp.add(rel.toString("latin1"));
  }

  /**
   * The host path of `p` inside the tree, to work on with other tools, following
   * symlinks as a chroot would; refuses to leave the tree. A symlink as the last part
   * must say which it means: `{ followLast: true }` for what it points to in the tree,
   * `{ followLast: false }` for the link itself (to remove or read it: a host tool that
   * writes through it follows it on the host, out of the tree).
   *
   * In a snapshot this is a path in the tree's own directory, with what it names copied
   * up first, so changing it never changes the base: a file, or a directory with all it
   * holds (hard links kept), so that host tools see and change the whole of it. Removing
   * anything there is recorded as a deletion. The tree's root (`path("/")`, `dir`) holds
   * only what this tree changed: to run a program on the whole tree, use run() or a layer.
   */
  path(p: string, options: { followLast?: boolean } = {}): string {
    let rel = this.settle(p, true); // a directory comes up with what is under it
    if (rel.length && options.followLast === undefined && this.find(rel)?.st.isSymbolicLink()) {
      throw this.fail(
        `path(${JSON.stringify(p)}) names a symlink: a host tool writing through it would follow it on the host, not in the tree`,
        `root.path(${JSON.stringify(p)}, { followLast: true }) for what it points to, { followLast: false } for the link itself`,
      );
    }
    if (options.followLast) rel = this.settle(p, true, true);
    if (rel.length) {
      const present = this.find(rel); // before its parents come up: under a removed directory, nothing is
      this.prepareParents(rel);
      const own = fs.lstatSync(this.upper(rel), { throwIfNoEntry: false });
      if (own && isWhiteout(own)) {
        fs.unlinkSync(this.upper(rel));
        this.hidden.add(rel.toString("latin1"));
      } else if (!present) {
        // Not in the tree: a path for something new.
      } else if (this.base && present.st.isDirectory()) this.copyUpTree(rel, new Map());
      else this.copyUp(rel);
    }
    return this.upper(rel).toString();
  }

  /**
   * sync() for an operation on `p`: the path as written (the links it goes through) and
   * where it leads; the relative path it resolves to.
   */
  private settle(p: string, below = false, followLast = false): Buffer {
    this.sync(scope(p), below);
    const rel = this.resolve(p, followLast);
    this.sync(rel.toString("latin1"), below);
    return rel;
  }

  /** copyUp a directory and everything the base holds under it that this tree has not changed. */
  private copyUpTree(rel: Buffer, links: Map<string, Buffer>): void {
    this.copyUp(rel, false, links);
    for (const child of readMergedDir(this.base!.dirs, rel)) {
      const childRel = Buffer.concat([rel, SLASH, child.name]);
      const own = fs.lstatSync(this.upper(childRel), { throwIfNoEntry: false });
      if (own && (isWhiteout(own) || !own.isDirectory())) continue; // deleted or replaced here
      if (child.st.isDirectory() && (!own || own.isDirectory())) this.copyUpTree(childRel, links);
      else if (!own) this.copyUp(childRel, false, links);
    }
  }

  /** Whether `p` exists in the tree (a dangling symlink exists). */
  exists(p: string): boolean {
    return Boolean(this.find(this.settle(p)));
  }

  /** Create a directory (and its parents) with explicit modes, so umask never leaks in. */
  async mkdir(p: string, mode = 0o755): Promise<void> {
    this.settle(p, false, true);
    const parts = p.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const rel = this.resolve(parts.slice(0, i).join("/"), true);
      const found = this.find(rel);
      if (found?.st.isDirectory()) continue;
      if (found) throw this.fail(`cannot make directory ${parts.slice(0, i).join("/")}: a file is in the way`);
      this.prepareParents(rel);
      const own = fs.lstatSync(this.upper(rel), { throwIfNoEntry: false });
      if (own) fs.unlinkSync(this.upper(rel)); // a whiteout: the base's directory stays hidden
      fs.mkdirSync(this.upper(rel));
      fs.chmodSync(this.upper(rel), i === parts.length ? mode : 0o755);
      if (own && this.base) this.hidden.add(rel.toString("latin1"));
    }
    this.sync(scope(p));
  }

  /** Where a new entry named `p` goes: its directory made, whatever stood there removed. */
  private async place(p: string): Promise<Buffer> {
    this.resolve(p); // refuse an escape before creating anything
    await this.mkdir(path.posix.dirname(abs(p)));
    const rel = this.resolve(p);
    if (!rel.length) throw this.fail(`cannot replace the tree's root directory`);
    this.prepareParents(rel);
    const target = this.upper(rel);
    const own = fs.lstatSync(target, { throwIfNoEntry: false });
    if (own?.isDirectory()) throw this.fail(`${p} is a directory`, `remove it first: root.remove(${JSON.stringify(p)}, { recursive: true })`);
    if (own) fs.unlinkSync(target); // a file, a link or a whiteout: the new entry shadows the base's
    this.replaced(rel);
    return target;
  }

  /** Write a file with `content` and `mode` (default 0644). */
  async write(p: string, content: string | Uint8Array, mode = 0o644): Promise<void> {
    this.settle(p);
    const target = await this.place(p);
    fs.writeFileSync(target, content);
    fs.chmodSync(target, mode);
    this.sync(scope(p));
  }

  /** `ln -s target linkPath` inside the tree. */
  async symlink(target: string, linkPath: string): Promise<void> {
    this.settle(linkPath);
    const at = await this.place(linkPath);
    fs.symlinkSync(target, at);
    this.sync(scope(linkPath));
  }

  async chmod(p: string, mode: number): Promise<void> {
    // The entry alone comes up (a directory without what it holds, unlike path()).
    const rel = this.settle(p, false, true);
    if (!this.find(rel)) throw this.fail(`cannot chmod ${p}: no such file or directory in the tree`);
    if (rel.length) {
      this.prepareParents(rel);
      this.copyUp(rel);
    }
    fs.chmodSync(this.upper(rel), mode);
  }

  /**
   * Remove `p` from the tree (a directory only with `recursive`). In a snapshot, what the
   * base has there is hidden by a whiteout, so the deletion reaches the layer.
   */
  async remove(p: string, options: { recursive?: boolean } = {}): Promise<void> {
    const rel = this.settle(p, true);
    const found = this.find(rel);
    if (!rel.length) throw this.fail(`cannot remove the tree's root directory`);
    if (!found) throw this.fail(`cannot remove ${p}: no such file or directory in the tree`);
    if (found.st.isDirectory() && !options.recursive) {
      const children = this.base ? readMergedDir(this.layers, rel) : fs.readdirSync(this.upper(rel));
      if (children.length) throw this.fail(`cannot remove ${p}: the directory is not empty`, `root.remove(${JSON.stringify(p)}, { recursive: true })`);
    }
    this.prepareParents(rel);
    removeTree(this.upper(rel));
    this.forget(escapePath(rel));
    if (this.base && locate(this.base.dirs, rel)) this.hidden.add(rel.toString("latin1"));
    this.copiedUp.delete(rel.toString("latin1"));
    this.sync(scope(p), true);
  }

  /** Record an owner: the layers and initrds carry it, the disk does not need root. */
  async chown(p: string, uid: number, gid: number): Promise<void> {
    this.meta.owners[this.key(p)] = [uid, gid];
  }

  /** Record a device node (an empty placeholder stands for it on disk). */
  async mknod(p: string, type: "char" | "block", major: number, minor: number, mode = 0o600): Promise<void> {
    await this.write(p, "", 0o600);
    this.meta.devices[this.key(p)] = { type, major, minor, mode };
  }

  /**
   * Copy host files, directories or other targets into the tree. `dest` ending in "/"
   * is a directory to copy into. A host symlink is copied as a symlink, together with
   * what it points to (so /bin/sh → dash brings dash along). Host paths become
   * dependencies of this target.
   */
  async copyIn(sources: Source | readonly Source[], dest: string): Promise<void> {
    const list = Array.isArray(sources) ? sources : [sources as Source];
    const links: CopiedLinks = new Map(); // hard-linked sources stay linked
    for (const source of list) {
      let hostPath: string;
      let name: string;
      if (isNode(source)) {
        hostPath = await this.ctx.need(source);
        name = source.name;
      } else {
        hostPath = path.resolve(source);
        name = path.basename(hostPath);
      }
      const into = dest.endsWith("/") ? path.posix.join(dest, name) : dest;
      await this.copyHostPath(hostPath, into, !isNode(source), links);
    }
  }

  private async copyHostPath(hostPath: string, into: string, isHost: boolean, links: CopiedLinks): Promise<void> {
    const st = fs.lstatSync(hostPath, { throwIfNoEntry: false });
    if (!st) throw this.fail(`cannot copy ${hostPath}: no such file`);
    if (isHost) this.ctx.dependOn(hostPath);
    this.settle(into, true);
    await this.mkdir(path.posix.dirname(abs(into)));
    const rel = this.resolve(into);
    this.prepareParents(rel);
    const found = this.find(rel);
    if (st.isSymbolicLink()) {
      const link = fs.readlinkSync(hostPath);
      const target = await this.place(into);
      fs.symlinkSync(link, target);
      this.sync(scope(into), true);
      if (isHost) {
        // Bring what it points to, at the matching place in the tree.
        const pointed = path.resolve(path.dirname(hostPath), link);
        const inTree = link.startsWith("/") ? link : path.posix.join(path.posix.dirname(abs(into)), link);
        if (!this.find(this.resolve(inTree, true)) && fs.existsSync(pointed)) await this.copyHostPath(pointed, inTree, true, links);
      }
      return;
    }
    // Like cp, a copy onto a directory that is there goes into it (the base's is brought
    // up first); anything else at the destination is replaced, never followed.
    let target = rel;
    if (found?.st.isDirectory()) {
      this.copyUp(rel);
      target = Buffer.concat([rel, SLASH, Buffer.from(path.basename(hostPath))]);
    }
    this.ctx.noteCommand(`copy ${hostPath} → ${escapePath(target) || "/"}`);
    const prefix = this.upper(Buffer.alloc(0)).length + 1;
    copyHost(hostPath, this.upper(target), links, (to, st) => {
      const rel = to.subarray(prefix);
      this.replaced(rel);
      const setuid = (st.mode & 0o4000) !== 0 && st.uid !== 0;
      const setgid = (st.mode & 0o2000) !== 0 && st.gid !== 0 && !st.isDirectory(); // a setgid directory only passes its group on
      if (setuid || setgid) this.privileged.set(escapePath(rel), { host: hostPath, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 });
    });
    this.recordHostXattrs(hostPath, target);
    this.sync(scope(into), true);
  }

  /**
   * Record the extended attributes of host path `hostPath` (a tree of them, for a
   * directory), copied to `target`: capabilities and ACLs are kept as cp -a keeps them,
   * in the tree's metadata. A file with an ACL gets its own group bits, not the ACL's mask.
   */
  private recordHostXattrs(hostPath: string, target: Buffer): void {
    const found = readXattrs([hostPath], { recursive: fs.lstatSync(hostPath).isDirectory(), say: (m) => this.ctx.warn(m) });
    for (const [host, attrs] of found) {
      const rel = Buffer.concat([target, Buffer.from(host.slice(hostPath.length))]);
      (this.meta.xattrs ??= {})[escapePath(rel)] = attrs;
      const group = attrs["system.posix_acl_access"] ? aclGroupBits(attrs["system.posix_acl_access"]) : undefined;
      if (group !== undefined) {
        const file = this.upper(rel);
        const mode = fs.lstatSync(file).mode & 0o7777;
        fs.chmodSync(file, (mode & ~0o070) | (group << 3));
      }
    }
  }

  /** Record an extended attribute (`value`: bytes, or a string as UTF-8): layers carry it as a pax SCHILY.xattr record. */
  async xattr(p: string, name: string, value: string | Uint8Array): Promise<void> {
    if (!/^(user|trusted|security|system)\.[^\0=]+$/.test(name)) {
      throw this.fail(`${JSON.stringify(name)} is not an extended attribute name`, "a name like user.comment or security.capability");
    }
    if (!this.find(this.settle(p))) throw this.fail(`cannot set ${name} on ${p}: no such file in the tree`);
    (this.meta.xattrs ??= {})[this.key(p)] = { ...this.meta.xattrs?.[this.key(p)], [name]: Buffer.from(value).toString("hex") };
  }

  /**
   * Start from another fs: this tree becomes a snapshot of it (nothing is copied; see
   * the file's header) when nothing was put in it yet, else its files are copied in
   * (`cp -a other/. tree/`). Its recorded owners come along either way.
   * `{ snapshot: false }` always copies, giving a tree that stands alone.
   */
  async from(source: Node | string, options: { snapshot?: boolean } = {}): Promise<void> {
    const other = resolveTarget(source);
    const result = await this.ctx.result(other);
    if (!result.path) throw this.fail(`from(${other.name}): it has no output tree`);
    const otherMeta = asMeta(result.value);
    this.sync();
    const untouched = !this.base && fs.readdirSync(this.dir).length === 0 &&
      Object.keys(this.meta.owners).length === 0 && Object.keys(this.meta.devices).length === 0;
    if (options.snapshot !== false && untouched && result.manifest) {
      this.base = await TreeView.fromResult(this.ctx, result);
      this.meta.base = { name: other.name, stamp: result.stamp };
    } else if (!otherMeta.base) {
      this.ctx.noteCommand(`copy ${result.path}/. → /`);
      const links: CopiedLinks = new Map(); // one map for the whole tree: a link group stays whole across its top-level names
      for (const name of fs.readdirSync(result.path, { encoding: "buffer" })) {
        copyHost(Buffer.concat([Buffer.from(result.path), SLASH, name]), this.upper(name), links);
      }
      fs.chmodSync(this.dir, fs.statSync(result.path).mode & 0o7777);
    } else {
      materialize((await TreeView.fromResult(this.ctx, result)).dirs, this.dir);
    }
    Object.assign(this.meta.owners, otherMeta.owners);
    Object.assign(this.meta.devices, otherMeta.devices);
    if (otherMeta.xattrs) this.meta.xattrs = { ...this.meta.xattrs, ...otherMeta.xattrs };
  }

  /**
   * Run a command inside the tree, chrooted, as root in a user namespace (the RUN line
   * of a Dockerfile): `root.run(["apt-get", "install", "-y", "curl"])`. A snapshot runs
   * on an overlay of its own directory over its base, so what the command changes or
   * deletes lands in this tree only. Its output goes to the target's log; a failure fails
   * the target with the command and its exit code. A single uid is mapped when not root:
   * a command that chowns to another user fails there.
   */
  async run(argv: string[], options: RunOptions = {}): Promise<{ stdout: string; stderr: string }> {
    return await this.runChrooted(argv, options);
  }

  /**
   * Run a command chrooted in this tree with another fs (a toolchain, busybox, a package
   * manager) mounted read-only at `mountpoint`, as dappdeps mounts its tool images into
   * a build: the tree needs no shell or compiler of its own, and none ends up in it.
   * Afterwards the mount point is an empty directory (made if missing; it must be empty
   * before), and anything the command left under it is an error naming the paths.
   *
   * ```ts
   * await root.runWith(busyboxTools, "/.tools", ["/.tools/bin/sh", "-c", "echo built > /etc/motd"]);
   * ```
   */
  async runWith(tools: Node | string, mountpoint: string, argv: string[], options: RunOptions = {}): Promise<{ stdout: string; stderr: string }> {
    const toolsNode = resolveTarget(tools);
    const view = await TreeView.open(this.ctx, toolsNode);
    this.sync();
    const rel = this.resolve(mountpoint, true);
    if (!rel.length) throw this.fail(`runWith: cannot mount ${toolsNode.name} over the tree's root`, "mount it at a directory such as /.tools");
    const found = this.find(rel);
    if (found && !found.st.isDirectory()) throw this.fail(`runWith: the mount point ${mountpoint} is not a directory`);
    const before = this.entriesUnder(rel);
    if (before.length) throw this.fail(`runWith: the mount point ${mountpoint} is not empty (${before.slice(0, 5).join(", ")})`, "mount the tools at an empty or new directory");
    if (!found) await this.mkdir("/" + rel.toString("latin1"));
    const result = await this.runChrooted(argv, options, { layers: view.dirs, at: rel.toString("latin1") });
    const written = this.entriesUnder(rel);
    if (written.length) {
      const shown = written.slice(0, 10).join(", ") + (written.length > 10 ? `, and ${written.length - 10} more` : "");
      throw this.fail(`runWith: ${argv[0]} wrote under the tool mount point ${mountpoint}: ${shown}`, `write outside ${mountpoint}: what is left there would ship in the tree and its layers`);
    }
    return result;
  }

  /** Paths (absolute, escaped) in the tree under directory `rel`. */
  private entriesUnder(rel: Buffer): string[] {
    if (!this.find(rel)?.st.isDirectory()) return [];
    const paths: string[] = [];
    walkMerged(this.layers, (child) => {
      if (!child.equals(rel)) paths.push("/" + escapePath(child));
    }, rel);
    return paths;
  }

  private async runChrooted(argv: string[], options: RunOptions, tools?: ToolMount): Promise<{ stdout: string; stderr: string }> {
    this.sync();
    const { stdout, stderr, opaque, xattrs } = await runInTree(this.ctx, this.dir, this.base?.dirs ?? [], argv, options, tools);
    for (const [key, attrs] of xattrs) (this.meta.xattrs ??= {})[key] = { ...this.meta.xattrs?.[key], ...attrs };
    // What the kernel marked opaque is now a plain directory: hide the base's children there.
    makeWhiteouts(opaque.flatMap((rel) => this.opaqueWhiteouts(rel)), this.ctx.name);
    this.sync();
    return { stdout, stderr };
  }

  /** Every entry of the tree as it stands now (its own directory over its base), in path order. */
  walk(visit: (rel: Buffer, found: Found) => void): void {
    this.sync();
    if (!this.base) walkSorted(this.dir, (rel, host, st) => visit(rel, { layer: 0, host, st }));
    else walkMerged(this.layers, visit);
  }

  /**
   * The cookbook's libs.fs.do: every ELF executable and library in the tree, its shared
   * libraries (and the dynamic loader) copied in from the host, with their symlinks.
   */
  async addSharedLibraries(): Promise<string[]> {
    const files: string[] = [];
    this.walk((_rel, found) => {
      if (found.st.isFile()) files.push(found.host.toString());
    });
    const added = await sharedLibraries(files);
    for (const lib of added) await this.copyIn(lib, lib);
    return added;
  }

  /**
   * Called by fs() when the builder is done: pending deletions become whiteouts; a host
   * file copied in setuid or setgid with an owner other than root must have its owner set
   * (root.chown) or its bit cleared, or the image would hold a setuid-root file the host
   * never had.
   */
  finish(): TreeMeta {
    this.sync();
    for (const [key, seen] of this.privileged) {
      if (this.meta.owners[key]) continue;
      const found = this.find(unescapePath(key));
      if (!found || !found.st.isFile() || (found.st.mode & 0o6000) === 0) continue;
      const bit = (seen.mode & 0o4000) && seen.uid !== 0 ? `setuid (its owner on the host is uid ${seen.uid})` : `setgid (its group on the host is gid ${seen.gid})`;
      const p = "/" + key;
      throw this.fail(`${p} was copied from ${seen.host}, which is ${bit}: in a layer it would be setuid/setgid root`, `keep its owner with root.chown("${p}", ${seen.uid}, ${seen.gid}), or clear the bit with root.chmod("${p}", 0o${(seen.mode & 0o1777).toString(8)})`);
    }
    return this.meta;
  }

  /** A new entry at `rel` over the base's: removing it later by any means deletes the path. */
  private replaced(rel: Buffer): void {
    if (this.base && locate(this.base.dirs, rel)) this.copiedUp.add(rel.toString("latin1"));
  }

  /** Drop what is recorded for `key` and everything under it (a removed path's owner must not pass to a new one). */
  private forget(key: string): void {
    const under = (k: string) => k === key || k.startsWith(key + "/");
    for (const record of [this.meta.owners, this.meta.devices, this.meta.xattrs ?? {}]) {
      for (const k of Object.keys(record)) if (under(k)) delete record[k];
    }
  }

  private key(p: string): string {
    return escapePath(this.resolve(p));
  }
}

const abs = (p: string) => (p.startsWith("/") ? p : "/" + p);

/** A path as sync() scopes it: relative, as written (latin1). */
const scope = (p: string) => join(splitPath(Buffer.from(p))).toString("latin1");

/** Whether `key` is `scope`, above it or under it (paths relative to the tree, latin1). */
function related(key: string, scope: string): boolean {
  if (key.length === scope.length) return key === scope;
  const [short, long] = key.length < scope.length ? [key, scope] : [scope, key];
  return short === "" || (long.startsWith(short) && long.charCodeAt(short.length) === 0x2f);
}

/** `rel` and the directories above it ("a/b/c": "a", "a/b", "a/b/c"). */
function pathAndAbove(rel: string): string[] {
  const out: string[] = [];
  for (let i = rel.indexOf("/"); i >= 0; i = rel.indexOf("/", i + 1)) out.push(rel.slice(0, i));
  if (rel) out.push(rel);
  return out;
}

/**
 * Create overlayfs whiteouts (char devices 0:0). Linux lets an unprivileged user do
 * this since 5.8; names go through xargs -0 so any byte survives.
 */
function makeWhiteouts(paths: Buffer[], target: string): void {
  if (!paths.length) return;
  // Node cannot mknod: one mknod makes a whiteout, every other is a hard link to it, as
  // overlayfs itself shares one whiteout inode (Linux ≥ 5.8). A process per whiteout
  // took ~6 ms each here (12 s for a directory of 2000 files emptied by a command).
  const slash = paths[0].lastIndexOf(0x2f);
  const first = Buffer.concat([paths[0].subarray(0, slash + 1), Buffer.from(`.crecipe-whiteout-${process.pid}`)]);
  const fresh = () => {
    fs.rmSync(first, { force: true }); // one a killed run left
    mknodWhiteouts([first], target);
  };
  fresh();
  const apart: Buffer[] = [];
  try {
    for (const p of paths) {
      try {
        fs.linkSync(first, p);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "EMLINK") (fresh(), fs.linkSync(first, p)); // an inode's most links (65 000 on ext4): a new one, as overlayfs does
        else if (code === "EXDEV") apart.push(p); // on another file system (a mount in the tree)
        else throw error;
      }
    }
  } finally {
    fs.rmSync(first, { force: true });
  }
  mknodWhiteouts(apart, target);
}

function mknodWhiteouts(paths: Buffer[], target: string): void {
  if (!paths.length) return;
  const input = Buffer.concat(paths.flatMap((p) => [p, Buffer.alloc(1)]));
  const r = childProcess().spawnSync("xargs", ["-0", "-r", "-I{}", "mknod", "{}", "c", "0", "0"], { input, encoding: "utf8" });
  if (r.status !== 0) {
    throw new CrecipeError(`${target}: cannot record a deletion as a whiteout (mknod c 0 0): ${(r.stderr || r.error?.message || "").trim()}`, {
      target,
      fix: "a deletion in a snapshot needs Linux ≥ 5.8 as an unprivileged user (or root); or build the fs with from(base, { snapshot: false })",
    });
  }
}
