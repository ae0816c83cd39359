/**
 * Unpack a tar into a directory without root: owners (and device nodes) are recorded in
 * Ownership instead of applied, so the tree scans — and layers — the same whoever built
 * it. Directory modes are applied last, so a read-only directory can still be filled.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CrecipeError } from "../engine/errors.ts";
import { escapePath } from "../formats/filelist.ts";
import { tarStream } from "../runtime.ts";
import { emptyOwnership, type Ownership } from "./scan.ts";

/** The fields of a tar-stream header that unpacking reads. */
interface TarHeader {
  name: string;
  type: string | null;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string | null;
  devmajor?: number;
  devminor?: number;
}

export async function untar(archive: string, into: string, meta: Ownership = emptyOwnership()): Promise<Ownership> {
  const extract = tarStream().extract({ filenameEncoding: "latin1" } as never);
  const dirModes: [string, number][] = [];
  const realInto = fs.realpathSync(into);
  const inside = (name: string): string => {
    const rel = name.replace(/^\.?\/+/, "").replace(/\/+$/, "");
    if (rel.split("/").includes("..")) throw new CrecipeError(`${archive}: entry ${JSON.stringify(name)} escapes the tree`);
    return rel;
  };
  const hostPath = (rel: string) => Buffer.from(path.join(into, rel), "latin1");
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header: TarHeader, stream: NodeJS.ReadableStream, next: (error?: Error) => void) => {
      try {
        const rel = inside(header.name);
        if (rel === "") {
          dirModes.push(["", header.mode ?? 0o755]);
          stream.resume();
          return stream.on("end", next);
        }
        const key = escapePath(Buffer.from(rel, "latin1"));
        const target = hostPath(rel);
        // Never write through a symlink that leads out of the tree.
        const parent = fs.realpathSync(path.dirname(target.toString("latin1")));
        if (parent !== realInto && !parent.startsWith(realInto + "/")) {
          throw new CrecipeError(`${archive}: entry ${JSON.stringify(header.name)} would be written outside the tree (through a symlink)`);
        }
        if ((header.uid ?? 0) !== 0 || (header.gid ?? 0) !== 0) meta.owners[key] = [header.uid ?? 0, header.gid ?? 0];
        const mode = (header.mode ?? 0o644) & 0o7777;
        // Whatever stands at the name is replaced, never followed (a symlink an earlier
        // entry made could point anywhere on the host).
        const existing = fs.lstatSync(target, { throwIfNoEntry: false });
        if (existing && !(existing.isDirectory() && header.type === "directory")) fs.rmSync(target, { recursive: true, force: true });
        switch (header.type) {
          case "directory":
            if (!existing?.isDirectory()) fs.mkdirSync(target, { mode: 0o700 });
            dirModes.push([rel, mode]);
            break;
          case "file":
          case "contiguous-file": {
            const chunks: Buffer[] = [];
            stream.on("data", (c: Buffer) => chunks.push(c));
            stream.on("end", () => {
              try {
                fs.rmSync(target, { force: true });
                fs.writeFileSync(target, Buffer.concat(chunks));
                fs.chmodSync(target, mode);
                next();
              } catch (error) {
                next(error as Error);
              }
            });
            return;
          }
          case "symlink":
            fs.rmSync(target, { force: true });
            fs.symlinkSync(Buffer.from(header.linkname ?? "", "latin1"), target);
            break;
          case "link": {
            const source = hostPath(inside(header.linkname ?? ""));
            const real = fs.realpathSync(source);
            const linked = fs.lstatSync(source, { throwIfNoEntry: false });
            if ((real !== realInto && !real.startsWith(realInto + "/")) || !linked?.isFile()) {
              throw new CrecipeError(`${archive}: hard link ${JSON.stringify(header.name)} points to ${JSON.stringify(header.linkname)}, which is not a file of the tree`);
            }
            fs.linkSync(source, target);
            break;
          }
          case "character-device":
          case "block-device":
            fs.writeFileSync(target, "", { mode: 0o600 });
            meta.devices[key] = { type: header.type === "block-device" ? "block" : "char", major: header.devmajor ?? 0, minor: header.devminor ?? 0, mode };
            break;
          case "fifo":
            throw new CrecipeError(`${archive}: fifo ${rel} is not supported in unpacked trees yet`);
          default:
            break; // pax/gnu extension headers are consumed by tar-stream
        }
        stream.resume();
        stream.on("end", next);
      } catch (error) {
        next(error as Error);
      }
    });
    extract.on("finish", resolve);
    extract.on("error", reject);
  });
  fs.createReadStream(archive).pipe(extract);
  await done;
  for (const [rel, mode] of dirModes.reverse()) {
    const dir = rel ? hostPath(rel) : Buffer.from(into);
    if (fs.lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) fs.chmodSync(dir, mode); // a later entry may have replaced it
  }
  return meta;
}
