/**
 * The handle an fs() builder gets: copy host files and other targets in, write, link,
 * record owners. Paths are resolved as inside a chroot: a symlink in the tree that
 * points at /usr/bin points at the tree's usr/bin, never at the host's.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { BuildContext } from "../engine/context.ts";
import { CrecipeError } from "../engine/errors.ts";
import { isNode, type Node } from "../engine/node.ts";
import { escapePath } from "../formats/filelist.ts";
import { $ } from "../runtime.ts";
import { emptyOwnership, type Ownership } from "./scan.ts";
import { sharedLibraries } from "./elf.ts";

export type Source = string | Node;

export class Root {
  /** Owners and device nodes recorded by chown()/mknod(); kept with the fs, not on disk. */
  readonly meta: Ownership = emptyOwnership();

  constructor(readonly ctx: BuildContext, readonly dir: string) {}

  /**
   * The host path of `p` inside the tree ("/bin/sh" or "bin/sh"), following symlinks
   * in the tree the way a chroot would. Refuses to leave the tree.
   */
  path(p: string, options: { followLast?: boolean } = {}): string {
    const parts = p.split("/").filter((x) => x && x !== ".");
    if (parts.includes("..")) {
      throw new CrecipeError(`${this.ctx.name}: path ${JSON.stringify(p)} contains "..": it could escape the tree`, {
        target: this.ctx.name,
        fix: "use a path inside the tree, without ..",
      });
    }
    let resolved: string[] = [];
    let hops = 0;
    const queue = [...parts];
    while (queue.length) {
      const part = queue.shift()!;
      if (part === "..") {
        resolved.pop(); // only link targets bring "..": clamped at the root, as in a chroot
        continue;
      }
      const candidate = path.join(this.dir, ...resolved, part);
      const st = fs.lstatSync(candidate, { throwIfNoEntry: false });
      if (st?.isSymbolicLink() && (queue.length > 0 || options.followLast)) {
        if (++hops > 40) throw new CrecipeError(`${this.ctx.name}: too many symlinks resolving ${p} in the tree`, { target: this.ctx.name });
        const link = fs.readlinkSync(candidate);
        if (link.startsWith("/")) resolved = [];
        queue.unshift(...link.split("/").filter((x) => x && x !== "."));
        continue;
      }
      resolved.push(part);
    }
    return path.join(this.dir, ...resolved);
  }

  /** Create a directory (and its parents) with explicit modes, so umask never leaks in. */
  async mkdir(p: string, mode = 0o755): Promise<void> {
    const parts = p.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const host = this.path(parts.slice(0, i).join("/"), { followLast: true });
      if (!fs.existsSync(host)) {
        fs.mkdirSync(host);
        fs.chmodSync(host, i === parts.length ? mode : 0o755);
      }
    }
  }

  /** Write a file with `content` and `mode` (default 0644). */
  async write(p: string, content: string | Uint8Array, mode = 0o644): Promise<void> {
    this.path(p); // refuse an escape before creating anything
    await this.mkdir(path.posix.dirname(abs(p)));
    const host = this.path(p);
    fs.rmSync(host, { force: true });
    fs.writeFileSync(host, content);
    fs.chmodSync(host, mode);
  }

  /** `ln -s target linkPath` inside the tree. */
  async symlink(target: string, linkPath: string): Promise<void> {
    this.path(linkPath);
    await this.mkdir(path.posix.dirname(abs(linkPath)));
    const host = this.path(linkPath);
    fs.rmSync(host, { force: true });
    fs.symlinkSync(target, host);
  }

  async chmod(p: string, mode: number): Promise<void> {
    fs.chmodSync(this.path(p, { followLast: true }), mode);
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
      await this.copyHostPath(hostPath, into, !isNode(source));
    }
  }

  private async copyHostPath(hostPath: string, into: string, isHost: boolean): Promise<void> {
    const st = fs.lstatSync(hostPath, { throwIfNoEntry: false });
    if (!st) {
      throw new CrecipeError(`${this.ctx.name}: cannot copy ${hostPath}: no such file`, { target: this.ctx.name });
    }
    if (isHost) this.ctx.dependOn(hostPath);
    await this.mkdir(path.posix.dirname(abs(into)));
    const target = this.path(into);
    if (st.isSymbolicLink()) {
      const link = fs.readlinkSync(hostPath);
      fs.rmSync(target, { force: true });
      fs.symlinkSync(link, target);
      if (isHost) {
        // Bring what it points to, at the matching place in the tree.
        const pointed = path.resolve(path.dirname(hostPath), link);
        const inTree = link.startsWith("/") ? link : path.posix.join(path.posix.dirname(abs(into)), link);
        if (!fs.existsSync(this.path(inTree, { followLast: true })) && fs.existsSync(pointed)) {
          await this.copyHostPath(pointed, inTree, true);
        }
      }
      return;
    }
    await $`cp -a --no-dereference --no-preserve=ownership ${hostPath} ${target}`;
  }

  /** cp -a of another fs into this one (its recorded owners come along). */
  async from(other: Node): Promise<void> {
    const result = await this.ctx.result(other);
    if (!result.path) throw new CrecipeError(`${this.ctx.name}: from(${other.name}): it has no output tree`, { target: this.ctx.name });
    await $`cp -a --no-preserve=ownership ${result.path}/. ${this.dir}/`;
    const meta = result.value as Ownership | null;
    if (meta?.owners) Object.assign(this.meta.owners, meta.owners);
    if (meta?.devices) Object.assign(this.meta.devices, meta.devices);
  }

  /**
   * The cookbook's libs.fs.do: every ELF executable and library in the tree, its shared
   * libraries (and the dynamic loader) copied in from the host, with their symlinks.
   */
  async addSharedLibraries(): Promise<string[]> {
    const added = await sharedLibraries(this.dir);
    for (const lib of added) await this.copyIn(lib, lib);
    return added;
  }

  private key(p: string): string {
    return escapePath(Buffer.from(path.relative(this.dir, this.path(p))));
  }
}

const abs = (p: string) => (p.startsWith("/") ? p : "/" + p);
