/**
 * layer(fs, diffbase): a deterministic tar of exactly the listed entries (NAME.layer).
 * Deletions become whiteouts (.wh.NAME, or an opaque .wh..wh..opq), hard links stay
 * links, every entry gets the same mtime and numeric owners. Each file is read once
 * (its hash comes from the tree's manifest), and the tar is hashed as it is written.
 */
import { CrecipeError } from "../engine/errors.ts";
import { type Node, target } from "../engine/node.ts";
import { THREAD_BYTES, warmThreads } from "../engine/threads.ts";
import { type Entry, whiteoutPath } from "../formats/entry.ts";
import { TreeView } from "../tree/view.ts";
import { asFs } from "./fs.ts";
import { layerChanges, list, variantOf } from "./list.ts";
import { packersFor } from "./pack.ts";
import { type TarItem, writeTarFile } from "./tarball.ts";

/** The timestamp every archive entry gets: $SOURCE_DATE_EPOCH, else 0 (1970-01-01). */
export function sourceDateEpoch(): number {
  const value = process.env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === "") return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new CrecipeError(`SOURCE_DATE_EPOCH=${value} is not a number of seconds`);
  return n;
}

/** What a layer target's value says: its sha256 (diff_id and blob digest) and size. */
export interface LayerValue {
  /** sha256 hex of the tar. */
  digest: string;
  /** Its length in bytes. */
  size: number;
}

/**
 * A layer tarball of `tree`, or of what changed from `diffbase`.
 *
 * ```ts
 * const libsLayer = layer("libs", "simple");   // libraries only: libs diffed against simple
 * ```
 */
export function layer(tree: Node | string, diffbase?: Node | string): Node<LayerValue> {
  const fsNode = asFs(tree);
  const baseNode = diffbase === undefined ? undefined : asFs(diffbase);
  const listNode = list(fsNode, baseNode);
  const mtime = sourceDateEpoch();
  return target(`${fsNode.name}.layer`, async (ctx) => {
    const view = await TreeView.open(ctx, fsNode);
    let expected = 0;
    let packers = 1;
    if (!baseNode) {
      // A layer of the whole tree is about its bytes and a header per file. A large one is
      // packed by helper threads (targets/pack.ts, engine/io.ts), which Node takes ~75 ms
      // to start: they start now, while the list is made.
      const { files, bytes } = view.size();
      expected = bytes + files * 1024;
      packers = packersFor(files, bytes);
      if (expected > THREAD_BYTES) warmThreads(1 + packers);
    }
    await ctx.need(listNode); // the cookbook's NAME.list, beside it
    let items: Iterable<TarItem>;
    if (!baseNode) {
      items = itemsOf(view.entries());
    } else {
      const { changed, whiteouts: deleted } = await layerChanges(ctx, view, baseNode);
      const whiteouts: Entry[] = deleted.map((p) => ({ path: whiteoutPath(p), type: "whiteout", mode: 0o644, uid: 0, gid: 0, size: 0 }));
      items = [...changed.map((entry) => ({ entry, host: entry.host, sig: entry.sig })), ...whiteouts.map((entry) => ({ entry }))]
        .sort((a, b) => Buffer.compare(orderKey(a.entry), orderKey(b.entry)));
      expected = changed.reduce((n, e) => n + e.size + 1024, 0);
    }
    const onSparse = (shown: string, size: number, allocated: number) => {
      ctx.warn(`${shown} is sparse (${mib(size)} long, ${mib(allocated)} on disk): a tar layer holds its holes as zeros (${mib(size)} to write, read and compress); leave such files out of images if you can`);
    };
    const { digest, size } = await writeTarFile(ctx.out, items, expected, mtime, ctx.name, { tree: fsNode.name, onSparse, packers });
    ctx.trustOutputHash(digest);
    return { digest, size };
  }, { kind: "layer", shared: true, options: { fs: fsNode, diffbase: baseNode ?? null, mtime }, derived: variantOf(fsNode, baseNode, "layer") });
}

const mib = (bytes: number) => `${(bytes / (1 << 20)).toFixed(bytes < 10 << 20 ? 1 : 0)} MiB`;

/**
 * Where an entry goes in a layer: path order, except that in a directory its whiteouts
 * come first, before any sibling ("Implementations SHOULD generate layers such that the
 * whiteout files appear before sibling directory entries", OCI image-spec layer.md).
 */
function orderKey(entry: Entry): Buffer {
  if (entry.type !== "whiteout") return entry.path;
  const slash = entry.path.lastIndexOf(0x2f);
  return Buffer.concat([entry.path.subarray(0, slash + 1), Buffer.from([0]), entry.path.subarray(slash + 1)]);
}

function* itemsOf(entries: Iterable<{ host: Buffer; sig: string } & Entry>): Generator<TarItem> {
  for (const entry of entries) yield { entry, host: entry.host, sig: entry.sig };
}
