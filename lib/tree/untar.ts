/**
 * Unpack a tar into a directory without root: owners, device nodes and extended
 * attributes (file capabilities) are recorded in the tree's metadata instead of applied,
 * so the tree scans — and layers — the same whoever built it. Directory modes are
 * applied last, so a read-only directory can still be filled. Nothing is ever written
 * through a symlink: what stands at a name is replaced.
 *
 * Read with crecipe's own reader (formats/tar.ts), not tar-stream: tar-stream decodes pax
 * values as UTF-8, which breaks binary ones (a security.capability value) and non-UTF-8
 * long names.
 */
import * as fs from "node:fs";
import { CrecipeError } from "../engine/errors.ts";
import { removeTree } from "../engine/io.ts";
import { escapePath } from "../formats/entry.ts";
import { parsePaxRecords, parseTarHeader } from "../formats/tar.ts";
import { childProcess } from "../runtime.ts";
import { emptyMeta, type TreeMeta } from "./meta.ts";

const BLOCK = 512;
const padded = (size: number) => Math.ceil(size / BLOCK) * BLOCK;

export interface UntarOptions {
  /**
   * Read the tar as an OCI layer over what `into` holds: `.wh.NAME` deletes NAME,
   * `.wh..wh..opq` empties its directory of what earlier layers put there.
   */
  whiteouts?: boolean;
  /**
   * Collect directory modes here instead of applying them at the end, for a caller that
   * unpacks several layers into one tree: a read-only directory of one layer must stay
   * writable until the last layer is in (as an ordinary user nothing overrides its mode).
   */
  dirModes?: [Buffer, number][];
}

const WHITEOUT = Buffer.from(".wh.");
const OPAQUE = Buffer.from(".wh..wh..opq");

/** Forget what `meta` recorded for `key` and everything under it (a path deleted or replaced). */
function forget(meta: TreeMeta, key: string, below: boolean): void {
  for (const table of [meta.owners, meta.devices, meta.xattrs ?? {}] as Record<string, unknown>[]) {
    delete table[key];
    if (below) for (const k of Object.keys(table)) if (k.startsWith(key + "/")) delete table[k];
  }
}

export async function untar(archive: string, into: string, meta: TreeMeta = emptyMeta(), options: UntarOptions = {}): Promise<TreeMeta> {
  const fd = fs.openSync(archive, "r");
  const ownEntries = new Set<string>(); // what this archive put in (an opaque whiteout keeps these)
  const realInto = fs.realpathSync(into);
  const dirModes: [Buffer, number][] = options.dirModes ?? [];
  const fail = (why: string) => new CrecipeError(`${archive}: ${why}`, { fix: "the archive is damaged or not made for this: make it again" });
  const read = (n: number): Buffer => {
    const buffer = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const r = fs.readSync(fd, buffer, got, n - got, null);
      if (r === 0) throw fail("it ends in the middle of an entry");
      got += r;
    }
    return buffer;
  };
  const skip = (n: number) => {
    if (n > 0) read(n);
  };
  /** The entry's path inside the tree: no leading "./" or "/", no "..". */
  const inside = (name: Buffer): Buffer => {
    let rel = name;
    while (rel.length && (rel[0] === 0x2f || (rel[0] === 0x2e && rel[1] === 0x2f))) rel = rel.subarray(rel[0] === 0x2f ? 1 : 2);
    while (rel.length && rel[rel.length - 1] === 0x2f) rel = rel.subarray(0, rel.length - 1);
    if (rel.equals(Buffer.from("."))) return Buffer.alloc(0);
    if (rel.toString("latin1").split("/").includes("..")) throw fail(`entry ${JSON.stringify(rel.toString("latin1"))} escapes the tree`);
    return rel;
  };
  const hostPath = (rel: Buffer) => (rel.length ? Buffer.concat([Buffer.from(realInto + "/"), rel]) : Buffer.from(realInto));

  let global = new Map<string, Buffer>();
  let pax: Map<string, Buffer> | undefined;
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  try {
    for (;;) {
      const header = parseTarHeader(read(BLOCK));
      if (!header) break;
      const body = () => {
        const data = read(padded(header.size)).subarray(0, header.size);
        return data;
      };
      if (header.typeflag === "x") {
        pax = new Map([...global, ...parsePaxRecords(body())]);
        continue;
      }
      if (header.typeflag === "g") {
        global = new Map([...global, ...parsePaxRecords(body())]);
        continue;
      }
      if (header.typeflag === "L" || header.typeflag === "K") {
        const data = body();
        const value = data.subarray(0, data.indexOf(0) < 0 ? data.length : data.indexOf(0));
        if (header.typeflag === "L") longName = value;
        else longLink = value;
        continue;
      }
      const records = pax ?? global;
      const name = records.get("path") ?? longName ?? header.name;
      const linkname = records.get("linkpath") ?? longLink ?? header.linkname;
      const size = records.has("size") ? Number(records.get("size")!.toString("latin1")) : header.size;
      const uid = records.has("uid") ? Number(records.get("uid")!.toString("latin1")) : header.uid;
      const gid = records.has("gid") ? Number(records.get("gid")!.toString("latin1")) : header.gid;
      pax = undefined;
      longName = longLink = undefined;

      const rel = inside(name);
      const dataSize = header.typeflag === "0" || header.typeflag === "7" || header.typeflag === "\0" ? size : 0;
      if (!rel.length) {
        if (header.typeflag === "5") dirModes.push([rel, header.mode]);
        skip(padded(dataSize));
        continue;
      }
      const key = escapePath(rel);
      const target = hostPath(rel);
      // Never write through a symlink that leads out of the tree.
      const slash = rel.lastIndexOf(0x2f);
      const parent = fs.realpathSync(slash < 0 ? Buffer.from(realInto) : hostPath(rel.subarray(0, slash)), { encoding: "buffer" }).toString("latin1");
      if (parent !== realInto && !parent.startsWith(realInto + "/")) {
        throw fail(`entry ${JSON.stringify(name.toString("latin1"))} would be written outside the tree (through a symlink)`);
      }
      const base = rel.subarray(slash + 1);
      if (options.whiteouts && base.subarray(0, WHITEOUT.length).equals(WHITEOUT)) {
        const dir = slash < 0 ? Buffer.alloc(0) : rel.subarray(0, slash);
        if (base.equals(OPAQUE)) {
          for (const name of fs.readdirSync(hostPath(dir), { encoding: "buffer" })) {
            const child = dir.length ? Buffer.concat([dir, Buffer.from("/"), name]) : name;
            if (ownEntries.has(escapePath(child))) continue;
            removeTree(hostPath(child));
            forget(meta, escapePath(child), true);
          }
        } else {
          const hidden = Buffer.concat([dir.length ? Buffer.concat([dir, Buffer.from("/")]) : Buffer.alloc(0), base.subarray(WHITEOUT.length)]);
          removeTree(hostPath(hidden));
          forget(meta, escapePath(hidden), true);
        }
        skip(padded(dataSize));
        continue;
      }
      ownEntries.add(key);
      // What an earlier layer recorded for this name no longer holds: the entry replaces it.
      const existing = fs.lstatSync(target, { throwIfNoEntry: false });
      forget(meta, key, Boolean(existing?.isDirectory()) && header.typeflag !== "5");
      if (uid !== 0 || gid !== 0) meta.owners[key] = [uid, gid];
      const xattrs: Record<string, string> = {};
      for (const [k, v] of records) if (k.startsWith("SCHILY.xattr.")) xattrs[k.slice(13)] = v.toString("hex");
      if (Object.keys(xattrs).length) (meta.xattrs ??= {})[key] = xattrs;
      // Whatever stands at the name is replaced, never followed.
      if (existing && !(existing.isDirectory() && header.typeflag === "5")) removeTree(target);
      switch (header.typeflag) {
        case "5":
          if (!existing?.isDirectory()) fs.mkdirSync(target, { mode: 0o700 });
          dirModes.push([rel, header.mode]);
          break;
        case "0":
        case "7":
        case "\0": {
          const out = fs.openSync(target, "w", 0o600);
          try {
            const chunk = Buffer.allocUnsafe(Math.min(1 << 20, Math.max(size, 1)));
            for (let left = size; left > 0;) {
              const n = fs.readSync(fd, chunk, 0, Math.min(chunk.length, left), null);
              if (n === 0) throw fail("it ends in the middle of a file");
              fs.writeSync(out, chunk, 0, n);
              left -= n;
            }
          } finally {
            fs.closeSync(out);
          }
          fs.chmodSync(target, header.mode);
          skip(padded(size) - size);
          break;
        }
        case "2":
          fs.symlinkSync(linkname, target);
          break;
        case "1": {
          const source = hostPath(inside(linkname));
          const real = fs.realpathSync(source);
          if ((real !== realInto && !real.startsWith(realInto + "/")) || !fs.lstatSync(source, { throwIfNoEntry: false })?.isFile()) {
            throw fail(`hard link ${JSON.stringify(name.toString("latin1"))} points to ${JSON.stringify(linkname.toString("latin1"))}, which is not a file of the tree`);
          }
          fs.linkSync(source, target);
          break;
        }
        case "3":
        case "4":
          fs.writeFileSync(target, "", { mode: 0o600 });
          meta.devices[key] = { type: header.typeflag === "4" ? "block" : "char", major: header.devMajor, minor: header.devMinor, mode: header.mode };
          break;
        case "6": {
          const r = childProcess().spawnSync("mkfifo", ["-m", header.mode.toString(8), target.toString()]);
          if (r.status !== 0) throw fail(`cannot make the fifo ${key}: ${r.stderr}`);
          break;
        }
        default:
          skip(padded(dataSize)); // another extension: nothing to unpack
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  if (options.dirModes) return meta;
  for (const [rel, mode] of dirModes.reverse()) {
    const dir = hostPath(rel);
    if (fs.lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) fs.chmodSync(dir, mode); // a later entry may have replaced it
  }
  return meta;
}
