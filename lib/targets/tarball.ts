/**
 * Writing a tar of tree entries or image files, the one archive loop every target
 * shares (layer, imageTar, load.docker, gz of an image): headers from formats/tar.ts,
 * each file's bytes read once and streamed, guarded against files that change while
 * they are packed.
 */
import * as fs from "node:fs";
import { CrecipeError } from "../engine/errors.ts";
import { statKey } from "../engine/manifest.ts";
import { type Entry, escapePath } from "../formats/entry.ts";
import { tarEnd, tarHeader, tarPadding } from "../formats/tar.ts";

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

/**
 * Write `items` as a tar to `sink`. `target` names the target for errors; `tree` the
 * fs the files come from (for the fix when one was edited by hand).
 */
export async function writeTar(sink: Sink, items: Iterable<TarItem>, mtime: number, target: string, tree?: string): Promise<void> {
  for (const { entry, host, sig } of items) {
    await sink.write(tarHeader(entry, mtime));
    if (entry.type !== "file" || entry.size === 0) continue;
    const fd = fs.openSync(host!, "r");
    try {
      const st = fs.fstatSync(fd);
      if ((sig && statKey(st) !== sig) || st.size !== entry.size) {
        throw new CrecipeError(`${escapePath(entry.path)} changed after ${tree ?? "its tree"} was built (${entry.size} → ${st.size} bytes${sig && statKey(st) !== sig ? ", rewritten" : ""})`, {
          target,
          fix: tree
            ? `something edited out/${tree} by hand: run crecipe again with --check, which finds and rebuilds it`
            : "something is writing into it; run again when it is done",
        });
      }
      let copied = 0;
      if (sink.copyFrom) copied = sink.copyFrom(fd, entry.size);
      else {
        while (copied < entry.size) {
          const chunk = Buffer.allocUnsafe(Math.min(CHUNK, entry.size - copied));
          const n = fs.readSync(fd, chunk, 0, chunk.length, null);
          if (n === 0) break;
          await sink.write(n === chunk.length ? chunk : chunk.subarray(0, n));
          copied += n;
        }
      }
      if (copied !== entry.size) {
        throw new CrecipeError(`${escapePath(entry.path)} changed size while packing (${entry.size} → ${copied} bytes)`, {
          target,
          fix: "something is writing into the tree; run again when it is done",
        });
      }
    } finally {
      fs.closeSync(fd);
    }
    await sink.write(tarPadding(entry.size));
  }
  await sink.write(tarEnd());
}
