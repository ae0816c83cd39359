/**
 * Writing a tar of tree entries or image files, the one archive loop every target
 * shares (layer, imageTar, load.docker, gz of an image): headers from formats/tar.ts,
 * each file's bytes read once and streamed, guarded against files that change while
 * they are packed.
 */
import * as fs from "node:fs";
import { breathe } from "../engine/io.ts";
import { statKey } from "../engine/manifest.ts";
import { type Entry, escapePath } from "../formats/entry.ts";
import { tarEnd, tarHeader, tarPadding } from "../formats/tar.ts";
import { type FileToRead, Prefetcher, problem } from "./prefetch.ts";

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
}

const CHUNK = 1 << 20;
/** Items per batch handed to the reading threads; an archive of fewer items never starts them. */
const BATCH = 512;

/**
 * Write `items` as a tar to `sink`. `target` names the target for errors; `tree` the
 * fs the files come from (for the fix when one was edited by hand). Past the first
 * batch of items, a file sink of many small files (`size` says, or the first batches)
 * gets its files' bytes from reading threads (prefetch.ts).
 */
export async function writeTar(
  sink: Sink,
  items: Iterable<TarItem>,
  mtime: number,
  target: string,
  tree?: string,
  size?: { files: number; bytes: number },
  onSparse?: (shown: string, size: number, allocated: number) => void,
): Promise<void> {
  const it = items[Symbol.iterator]();
  const nextBatch = (): TarItem[] => {
    const batch: TarItem[] = [];
    for (let r; batch.length < BATCH && !(r = it.next()).done;) batch.push(r.value);
    return batch;
  };
  const toRead = (batch: TarItem[]): FileToRead[] =>
    batch.filter((i) => i.entry.type === "file" && i.entry.size > 0)
      .map((i) => ({ host: i.host!, size: i.entry.size, sig: i.sig, shown: escapePath(i.entry.path) }));
  let readers: Prefetcher | undefined;
  const ahead: { items: TarItem[]; files: FileToRead[] }[] = []; // batches fetched, in order
  const fetch = (): boolean => {
    const items = nextBatch();
    if (!items.length) return false;
    const batch = { items, files: toRead(items) };
    ahead.push(batch);
    readers?.queue(batch.files);
    return true;
  };
  try {
    fetch();
    fetch();
    // An archive of many small files: from its second batch on, other threads read the
    // files, two batches ahead. (Where files are larger the extra copy costs more than
    // the system calls saved: measured here, 1.1 s → 1.5 s on 16 000 files of 12 KB,
    // 3.3 s → 2.3 s on 100 000 files of 1 KB.)
    const sample = size ?? { files: ahead.flatMap((b) => b.files).length, bytes: ahead.flatMap((b) => b.files).reduce((n, f) => n + f.size, 0) };
    const small = sample.files > 0 && sample.bytes / sample.files < SMALL;
    if (ahead.length > 1 && small && sink.copyFrom && (readers = Prefetcher.start(READERS))) readers.queue(ahead[1].files);
    for (let n = 0; ahead.length; n++) {
      const { items, files } = ahead.shift()!;
      while (ahead.length < (readers ? 2 : 1) && fetch()) { /* keep the readers fed */ }
      const prefetched = readers && n > 0;
      let f = 0;
      for (const { entry, host, sig } of items) {
        const pause = breathe(); // a signal's handler gets its turn
        if (pause) await pause;
        await sink.write(tarHeader(entry, mtime));
        if (entry.type !== "file" || entry.size === 0) continue;
        const file = files[f++];
        if (onSparse && entry.size >= SPARSE_MIN) {
          // A file with holes: tar (like OCI layers) has no holes, so they become zeros.
          const st = fs.statSync(file.host);
          if (st.blocks * 512 < entry.size / 2) onSparse(file.shown, entry.size, st.blocks * 512);
        }
        if (prefetched) readers!.read(file, (chunk) => sink.write(chunk), target, tree);
        else await copyFile(sink, { ...file, host: host!, sig }, target, tree);
        await sink.write(tarPadding(entry.size));
      }
    }
  } finally {
    readers?.stop();
  }
  await sink.write(tarEnd());
}

/** Files at least this long are checked for holes. */
const SPARSE_MIN = 1 << 20;

/** Reading threads: the system calls of one file after another are what a tree of small files costs (a second thread measured no faster: this one then waits for the writer). */
const READERS = 1;
/** Files smaller than this on average make an archive "of small files". */
const SMALL = 4096;

/** Append one file's bytes on this thread, checking it is what its tree's manifest says. */
async function copyFile(sink: Sink, file: FileToRead, target: string, tree: string | undefined): Promise<void> {
  const fd = fs.openSync(file.host, "r");
  try {
    const st = fs.fstatSync(fd);
    if ((file.sig && statKey(st) !== file.sig) || st.size !== file.size) throw problem(file, `changed:${st.size}`, target, tree);
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
  } finally {
    fs.closeSync(fd);
  }
}
