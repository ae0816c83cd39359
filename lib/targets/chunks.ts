/**
 * chunks(target): NAME.chunks, the content-defined chunk index of a file output (a layer,
 * its .gz, an image tar, an initrd), published beside it so `crecipe fetch` (fetchChunked)
 * can download a new version by the chunks an old one lacks. The file is streamed through
 * the chunker a block at a time; the format is in formats/chunks.ts.
 */
import * as fs from "node:fs";
import { CrecipeError } from "../engine/errors.ts";
import { breathe } from "../engine/io.ts";
import { type Node, resolveTarget, target } from "../engine/node.ts";
import { CHUNK_PARAMS, type ChunkIndex, ChunkIndexer, encodeChunkIndex } from "../formats/chunks.ts";

/** What chunks() gives: the indexed file's digest, size and chunk count. */
export interface ChunksValue {
  /** sha256 hex of the indexed file. */
  digest: string;
  /** Bytes in the indexed file. */
  size: number;
  /** Chunks the index lists. */
  chunks: number;
}

const BLOCK = 1 << 20;

/**
 * The chunk index of a file target, as NAME.chunks beside it.
 *
 * ```ts
 * export const published = [gz(appLayer), chunks(gz(appLayer))]; // out/app.layer.gz + out/app.layer.gz.chunks
 * ```
 */
export function chunks(target_: Node | string): Node<ChunksValue> {
  const of = resolveTarget(target_);
  return target(`${of.name}.chunks`, async (ctx) => {
    const input = await ctx.need(of);
    if (fs.statSync(input).isDirectory()) {
      throw new CrecipeError(`chunks(${of.name}): it is a directory; index a file target`, { target: ctx.name, fix: `chunks(imageTar(image)) for an image, chunks(layer) for a layer` });
    }
    const index = await indexFile(input, ctx.signal);
    fs.writeFileSync(ctx.out, encodeChunkIndex(index));
    return { digest: index.digest, size: index.size, chunks: index.chunks.length };
  }, { kind: "chunks", shared: true, options: { of, params: CHUNK_PARAMS }, derived: true });
}

/** The chunk index of a file, read a block at a time. */
export async function indexFile(file: string, signal?: AbortSignal): Promise<ChunkIndex> {
  const indexer = new ChunkIndexer();
  const fd = fs.openSync(file, "r");
  const block = Buffer.allocUnsafe(BLOCK);
  try {
    for (let n; (n = fs.readSync(fd, block, 0, BLOCK, null)) > 0;) {
      indexer.update(block.subarray(0, n));
      await breathe();
      signal?.throwIfAborted();
    }
  } finally {
    fs.closeSync(fd);
  }
  return indexer.finish();
}
