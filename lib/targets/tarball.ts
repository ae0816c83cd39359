/**
 * Writing a tar of tree entries or image files, the one archive loop every target
 * shares (layer, imageTar, load.docker, gz of an image): headers from formats/tar.ts,
 * each file's bytes read once and streamed, guarded against files that change while
 * they are packed.
 */
import * as fs from "node:fs";
import { breathe, type LentRing, OutputFile } from "../engine/io.ts";
import { statFields } from "../engine/manifest.ts";
import { type Entry, escapePath } from "../formats/entry.ts";
import { tarEnd, tarHeader, tarHeaderInto, tarPadding } from "../formats/tar.ts";
import { type FileToRead, openToPack, Packer, problem, writtenSince } from "./pack.ts";

export interface TarItem {
  entry: Entry;
  /** Where a file's content is on the host. */
  host?: Buffer | string;
  /** What stat said of it when its tree was built: a different answer now means it was edited. */
  sig?: string;
}

/** Where the archive goes: a file (synchronous, hashed on the way) or a pipe (asynchronous). */
export interface Sink {
  write(data: Uint8Array): void | Promise<void>;
  /** Append `size` bytes read from `fd`, if the sink can take them without a copy. */
  copyFrom?(fd: number, size: number): number;
  /** Lend the sink's shared ring to a packing thread (a large output file), if it has one. */
  lend?(): LentRing | undefined;
  takeBack?(next: number, bytes: number): void;
  /** Throw the sink's own failure, if it has one (a full disk met by its writing thread). */
  raiseFailure?(): void;
}

const CHUNK = 1 << 20;
/** Items per batch handed to the packing thread. */
const BATCH = 128;

/** How an archive is written, beyond its items. */
export interface TarOptions {
  /** The fs the files come from (for the fix when one was edited by hand). */
  tree?: string;
  /** Told of each file found sparse. */
  onSparse?: (shown: string, size: number, allocated: number) => void;
  /** Threads reading files side by side, where a packer is used (packersFor). */
  packers?: number;
}

/**
 * Write `items` as a tar to `sink`. `target` names the target for errors. A large output
 * file is packed by other threads (pack.ts) while this one makes headers.
 */
export async function writeTar(sink: Sink, items: Iterable<TarItem>, mtime: number, target: string, options: TarOptions = {}): Promise<void> {
  const { tree, onSparse } = options;
  const ring = sink.lend?.();
  const packer = ring && Packer.start(ring, options.packers, () => sink.raiseFailure?.());
  if (ring && !packer) sink.takeBack!(ring.next, 0);
  if (packer) {
    try {
      // Headers are written straight into one buffer per batch (grown for rare long ones).
      let heads = Buffer.allocUnsafe(BATCH * 1024);
      let used = 0;
      let lengths: number[] = [];
      let files: (FileToRead | undefined)[] = [];
      const flush = () => packer.send({ heads: heads.subarray(0, used), lengths, files }, target, tree);
      for (const item of items) {
        const { entry } = item;
        const file = fileOf(item, onSparse);
        let n = tarHeaderInto(entry, mtime, heads, used);
        if (n < 0) {
          const header = tarHeader(entry, mtime);
          heads = Buffer.concat([heads.subarray(0, used), header, Buffer.allocUnsafe(heads.length)]);
          n = header.length;
        }
        used += n;
        lengths.push(n);
        files.push(file);
        if (lengths.length === BATCH) {
          const pause = breathe(); // a signal's handler gets its turn
          if (pause) await pause;
          await flush();
          used = 0;
          lengths = [];
          files = [];
        }
      }
      if (lengths.length) await flush();
      const end = await packer.end();
      // After a failure the ring is not taken back: slots given to batches stay empty.
      packer.raise(target, tree);
      sink.takeBack!(end.next, end.bytes); // throws the output's own failure (a full disk), if any
    } finally {
      await packer.stop();
    }
  } else {
    for (const item of items) {
      const { entry } = item;
      const pause = breathe(); // a signal's handler gets its turn
      if (pause) await pause;
      await sink.write(tarHeader(entry, mtime));
      const file = fileOf(item, onSparse);
      if (!file) continue;
      await copyFile(sink, file, target, tree);
      await sink.write(tarPadding(entry.size));
    }
  }
  await sink.write(tarEnd());
}

/**
 * writeTar into a new file at `file`, hashed as it is written (an output `expected` to be
 * large is written and hashed by another thread, and packed by others): its sha256 hex
 * and size. On a failure the file is closed and left to the caller's temp dir.
 */
export async function writeTarFile(
  file: string,
  items: Iterable<TarItem>,
  expected: number,
  mtime: number,
  target: string,
  options: TarOptions = {},
): Promise<{ digest: string; size: number }> {
  const out = new OutputFile(file, expected);
  try {
    await writeTar(out, items, mtime, target, options);
  } catch (error) {
    out.abandon();
    throw error;
  }
  return { digest: out.close(), size: out.size };
}

/** Files at least this long are checked for holes. */
const SPARSE_MIN = 1 << 20;

/** A file with holes: tar (like OCI layers) has no holes, so they become zeros. */
function checkSparse(file: FileToRead, onSparse: (shown: string, size: number, allocated: number) => void): void {
  if (file.size < SPARSE_MIN) return;
  const st = fs.statSync(file.host);
  if (st.blocks * 512 < file.size / 2) onSparse(escapePath(file.path), file.size, st.blocks * 512);
}

/** Where an item's bytes come from, if it has any (a file found sparse is said on the way). */
function fileOf({ entry, host, sig }: TarItem, onSparse?: (shown: string, size: number, allocated: number) => void): FileToRead | undefined {
  if (entry.type !== "file" || entry.size === 0) return undefined;
  const file = { host: host!, size: entry.size, sig, path: entry.path };
  if (onSparse) checkSparse(file, onSparse);
  return file;
}

/** Append one file's bytes on this thread, checking it is what its tree's manifest says. */
async function copyFile(sink: Sink, file: FileToRead, target: string, tree: string | undefined): Promise<void> {
  let opened: ReturnType<typeof openToPack>;
  try {
    opened = openToPack(fs, file.host, file.size, file.sig ? statFields(file.sig) : [-1], 0);
  } catch (error) {
    throw problem(file, `error:${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, target, tree);
  }
  if (typeof opened === "string") throw problem(file, opened, target, tree);
  const fd = opened.fd;
  try {
    let copied = 0;
    if (sink.copyFrom) copied = sink.copyFrom(fd, file.size);
    else {
      while (copied < file.size) {
        const chunk = Buffer.allocUnsafe(Math.min(CHUNK, file.size - copied));
        const n = fs.readSync(fd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        await sink.write(n === chunk.length ? chunk : chunk.subarray(0, n));
        copied += n;
      }
    }
    if (copied !== file.size) throw problem(file, `shrank:${copied}`, target, tree);
    if (writtenSince(fs, fd, opened.st)) throw problem(file, "written:", target, tree);
  } finally {
    fs.closeSync(fd);
  }
}
