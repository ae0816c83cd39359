/**
 * Copy a merged tree (a snapshot's layers) into one ordinary directory: what
 * `root.from(other, { snapshot: false })` and runs that cannot mount an overlay need.
 * Directories merge with what is there, files replace; hard links stay linked.
 */
import * as fs from "node:fs";
import { CrecipeError } from "../engine/errors.ts";
import { readlinkBytes } from "../engine/io.ts";
import { escapePath } from "../formats/entry.ts";
import { walkMerged } from "./layers.ts";
import { childProcess } from "../runtime.ts";

export function materialize(dirs: readonly string[], dest: string): void {
  const prefix = Buffer.from(dest + "/");
  const links = new Map<string, Buffer>(); // layer:ino → the first copy
  const dirModes: [Buffer, number][] = [];
  walkMerged(dirs, (rel, found) => {
    const to = Buffer.concat([prefix, rel]);
    const { st } = found;
    const existing = fs.lstatSync(to, { throwIfNoEntry: false });
    if (st.isDirectory()) {
      if (existing && !existing.isDirectory()) fs.rmSync(to, { force: true });
      if (!existing?.isDirectory()) fs.mkdirSync(to, { mode: 0o700 });
      dirModes.push([to, st.mode & 0o7777]);
      return;
    }
    if (existing) fs.rmSync(to, { recursive: true, force: true });
    if (st.isFile()) {
      const key = `${found.layer}:${st.ino}`;
      const first = st.nlink > 1 ? links.get(key) : undefined;
      if (first) return fs.linkSync(first, to);
      fs.copyFileSync(found.host, to, fs.constants.COPYFILE_FICLONE);
      fs.chmodSync(to, st.mode & 0o7777);
      if (st.nlink > 1) links.set(key, to);
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(readlinkBytes(found.host), to);
    } else if (st.isFIFO()) {
      const r = childProcess().spawnSync("mkfifo", ["-m", (st.mode & 0o7777).toString(8), to.toString()]);
      if (r.status !== 0) throw new CrecipeError(`cannot copy the fifo ${escapePath(rel)}: ${r.stderr}`);
    } else {
      throw new CrecipeError(`cannot copy ${escapePath(rel)}: a device node can only be recorded (root.mknod), not copied`);
    }
  });
  // Modes last, deepest first: a read-only directory can still be filled before.
  for (const [dir, mode] of dirModes.reverse()) fs.chmodSync(dir, mode);
}

/** Hard-linked sources already copied (dev:ino → where): one copyIn keeps them linked. */
export type CopiedLinks = Map<string, Buffer>;

/**
 * Copy host path `from` (a file, a symlink, a directory with everything in it) to `to`,
 * as `cp -a --no-preserve=ownership` does, but never through a symlink at the
 * destination: whatever stands at `to` (or at a path inside it) that is not a real
 * directory is replaced, not followed, so a copy into a tree cannot write outside it.
 * A file is written to a temp name in its directory and renamed into place.
 */
export function copyHost(from: Buffer | string, to: Buffer, links: CopiedLinks = new Map(), copied?: (to: Buffer, st: fs.Stats) => void): void {
  const st = fs.lstatSync(from);
  copied?.(to, st);
  const existing = fs.lstatSync(to, { throwIfNoEntry: false });
  if (st.isDirectory()) {
    if (existing && !existing.isDirectory()) fs.rmSync(to, { force: true });
    if (!existing?.isDirectory()) fs.mkdirSync(to, { mode: 0o700 });
    fs.chmodSync(to, 0o700); // writable while it is filled
    for (const name of fs.readdirSync(from, { encoding: "buffer" })) {
      copyHost(Buffer.concat([Buffer.from(from), SLASH, name]), Buffer.concat([to, SLASH, name]), links, copied);
    }
    fs.chmodSync(to, st.mode & 0o7777);
    return;
  }
  if (existing?.isDirectory()) fs.rmSync(to, { recursive: true, force: true });
  const temp = Buffer.concat([to, Buffer.from(`.crecipe-${process.pid}.tmp`)]);
  fs.rmSync(temp, { force: true });
  const key = `${st.dev}:${st.ino}`;
  if (st.isFile()) {
    const first = st.nlink > 1 ? links.get(key) : undefined;
    if (first && fs.lstatSync(first, { throwIfNoEntry: false })?.isFile()) fs.linkSync(first, temp);
    else {
      fs.copyFileSync(from, temp, fs.constants.COPYFILE_FICLONE);
      fs.chmodSync(temp, st.mode & 0o7777);
      if (st.nlink > 1) links.set(key, to);
    }
  } else if (st.isSymbolicLink()) {
    fs.symlinkSync(readlinkBytes(from), temp);
  } else if (st.isFIFO()) {
    const r = childProcess().spawnSync("mkfifo", ["-m", (st.mode & 0o7777).toString(8), temp.toString()]);
    if (r.status !== 0) throw new CrecipeError(`cannot copy the fifo ${from}: ${r.stderr}`);
  } else {
    throw new CrecipeError(`cannot copy ${from}: a device node or socket is not copied from the host`, {
      fix: "record a device with root.mknod(path, type, major, minor); leave sockets out",
    });
  }
  fs.renameSync(temp, to);
}

const SLASH = Buffer.from("/");
