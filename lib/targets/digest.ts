/**
 * sha256(target), gz(target), zstd(target): the cookbook's default.sha256.do and
 * default.gz.do, and zstd for registries and runtimes that take it. gz is crecipe's own
 * (engine/gzip.ts); zstd's tool reads a file directly (no pass through crecipe). An image
 * directory is packed into the compressor's input as the tar imageTar() would write.
 */
import * as fs from "node:fs";
import { CommandError, CrecipeError } from "../engine/errors.ts";
import { hashFile } from "../engine/hash.ts";
import { type Node, resolveTarget, target } from "../engine/node.ts";
import type { BuildContext } from "../engine/types.ts";
import { requireTool } from "../host.ts";
import { checkGzipLevel, GZ_LEVELS } from "../formats/deflate.ts";
import { gzipFile as gzipInto, gzipStream } from "../engine/gzip.ts";
import { childProcess } from "../runtime.ts";
import { imageItems, type ImageValue, itemsSize } from "./image.ts";
import { writeTar } from "./tarball.ts";

/** NAME.sha256: the hex sha256 of a file target's output (and the value: the hex). */
export function sha256(target_: Node | string): Node<string> {
  const of = resolveTarget(target_);
  return target(`${of.name}.sha256`, async (ctx) => {
    const input = await ctx.need(of);
    if (fs.statSync(input).isDirectory()) {
      throw new CrecipeError(`sha256(${of.name}): it is a directory; hash a file target (a layer, imageTar(image))`, { target: ctx.name });
    }
    const digest = hashFile(input);
    fs.writeFileSync(ctx.out, digest + "\n");
    return digest;
  }, { kind: "sha256", shared: true, options: { of }, derived: true });
}

/**
 * NAME.gz: gzip that re-synchronises after a change, the same bytes on every machine: the
 * input cut where its content says, each piece a gzip member compressed by libdeflate in
 * WebAssembly, on every core (engine/gzip.ts). Levels 0–12, default 6.
 */
export function gz(target_: Node | string, options: { level?: number } = {}): Node {
  const of = resolveTarget(target_);
  const level = options.level ?? GZ_LEVELS.default;
  checkLevel(level, `gz(${of.name})`);
  return target(`${of.name}.gz`, async (ctx) => {
    const built = await ctx.result(of);
    const input = built.path!;
    const image = compressible(ctx, of, built.path, built.value);
    let sha256: string;
    if (!image) sha256 = await gzipFile(ctx, input, ctx.out, level);
    else {
      ctx.noteCommand(`gzip -${level} (libdeflate, content-defined members) < (tar of ${of.name}) > ${ctx.name}`);
      const items = imageItems(input);
      // Sized as imageTar() sizes it: a small image is compressed on this thread.
      sha256 = (await gzipStream(ctx.out, level, itemsSize(items), (gz) => writeTar(gz, items, image.created ?? 0, ctx.name))).sha256;
    }
    ctx.trustOutputHash(sha256);
  }, { kind: "gz", shared: true, options: { of, level }, derived: true });
}

/** A level gz() takes, or an error naming the target. */
function checkLevel(level: number, what: string): void {
  try {
    checkGzipLevel(level);
  } catch (error) {
    throw new CrecipeError(`${what}: ${(error as Error).message}`);
  }
}

/** gzip `input` into `output` exactly as gz() would (a registry push compresses layers so): the output's sha256. */
export async function gzipFile(ctx: BuildContext, input: string, output: string, level: number = GZ_LEVELS.default): Promise<string> {
  ctx.noteCommand(`gzip -${level} (libdeflate, content-defined members) < ${input} > ${output}`);
  return (await gzipInto(input, output, level)).sha256;
}

/**
 * NAME.zst: zstd on every core (`zstd -T0`), for registries and runtimes that accept
 * zstd layers (OCI media type `…layer.v1.tar+zstd`). Deterministic for a given zstd
 * version and level.
 */
export function zstd(target_: Node | string, options: { level?: number } = {}): Node {
  const of = resolveTarget(target_);
  const level = options.level ?? 3;
  return target(`${of.name}.zst`, async (ctx) => {
    const tool = await requireTool("zstd", ctx.name);
    await compress(ctx, of, tool, [`-${level}`, "-T0", "-q", "-c", "--no-progress"]);
  }, { kind: "zstd", shared: true, options: { of, level }, derived: true });
}

/** Compress `of`'s output into ctx.out: a file read by the tool itself, an image as the tar imageTar() writes. */
async function compress(ctx: BuildContext, of: Node, tool: string, args: string[]): Promise<void> {
  const built = await ctx.result(of);
  const input = built.path!;
  const image = compressible(ctx, of, built.path, built.value);
  const argv = image ? args : [...args, input];
  ctx.noteCommand(`${tool} ${argv.join(" ")}${image ? ` < (tar of ${of.name})` : ""} > ${ctx.name}`);
  await runCompressor(ctx, tool, argv, ctx.out, image ? (sink) => writeTar(sink, imageItems(input), image.created ?? 0, ctx.name) : undefined);
  ctx.trustOutputHash(hashFile(ctx.out));
}

/** What `of` gives to compress: a file (undefined) or an image directory (its value); else an error. */
function compressible(ctx: BuildContext, of: Node, input: string | undefined, value: unknown): Partial<ImageValue> | undefined {
  if (!input) throw new CrecipeError(`${ctx.name}: ${of.name} has no output to compress`, { target: ctx.name });
  if (!fs.statSync(input).isDirectory()) return undefined;
  const image = value as Partial<ImageValue> | null;
  if (!image?.manifest) {
    throw new CrecipeError(`${ctx.name}: ${of.name} is a directory; compress a file target (a layer) or an image`, { target: ctx.name });
  }
  return image;
}

/** What a compressor's input is written to, when crecipe writes it (a pipe to its stdin). */
type Sink = { write(data: Uint8Array): Promise<void> };

/**
 * Run `tool argv…` with stdout going straight to `output`, and `feed` writing its stdin
 * when given (else it reads a file named in argv); a failure is a CommandError with its
 * stderr in the log.
 */
async function runCompressor(ctx: BuildContext, tool: string, argv: string[], output: string, feed?: (sink: Sink) => Promise<unknown>): Promise<void> {
  const out = fs.openSync(output, "w");
  const errors = fs.openSync(`${ctx.tmp}/stderr`, "w+");
  let code: number | null;
  let killedBy: string | undefined;
  try {
    const child = childProcess().spawn(tool, argv, { stdio: [feed ? "pipe" : "ignore", out, errors] });
    const untrack = child.pid ? ctx.trackChild(child.pid) : () => {};
    let gone = false;
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (status, signal) => {
        gone = true;
        killedBy = signal ?? undefined;
        resolve(status);
      });
    });
    if (feed) {
      const stdin = child.stdin!;
      stdin.on("error", () => {}); // the exit code tells
      const stopped = new Error(`${tool} stopped reading`);
      const sink = {
        write: async (data: Uint8Array) => {
          if (gone) throw stopped;
          if (!stdin.write(data)) await Promise.race([new Promise((resolve) => stdin.once("drain", resolve)), exited]);
        },
      };
      try {
        await feed(sink);
      } catch (error) {
        if (error !== stopped) throw error;
      }
      stdin.end();
    }
    code = await exited;
    untrack();
  } finally {
    fs.closeSync(out);
    fs.closeSync(errors);
  }
  if (code !== 0) {
    ctx.log(fs.readFileSync(`${ctx.tmp}/stderr`, "utf8")); // the failure report shows the log's last lines
    throw new CommandError(code, { signal: killedBy });
  }
}
