/** sha256(target) and gz(target): the cookbook's default.sha256.do and default.gz.do. */
import * as fs from "node:fs";
import { CrecipeError, exitFailure } from "../engine/errors.ts";
import { hashFile } from "../engine/hash.ts";
import { type Node, target } from "../engine/node.ts";
import { spawn } from "node:child_process";
import { need, which } from "../run/tools.ts";
import { ArchiveFile } from "./archive.ts";

/** NAME.sha256: the hex sha256 of a file target's output (and the value: the hex). */
export function sha256(of: Node): Node<string> {
  return target(`${of.name}.sha256`, async (ctx) => {
    const digest = hashFile(await ctx.need(of));
    fs.writeFileSync(ctx.out, digest + "\n");
    return digest;
  }, { kind: "sha256", options: { of } });
}

/**
 * NAME.gz: gzip that re-synchronises after a change (--rsyncable), with no name or time
 * in the header, on every core: pigz when it is installed, else gzip.
 */
export function gz(of: Node, options: { level?: number } = {}): Node {
  const level = options.level ?? 6;
  return target(`${of.name}.gz`, async (ctx) => {
    const input = await ctx.need(of);
    if (fs.statSync(input).isDirectory()) {
      throw new CrecipeError(`gz(${of.name}): it is a directory; compress a file target (a layer, an image)`, { target: ctx.name });
    }
    const tool = (await which("pigz")) ?? (await need("gzip", ctx.name));
    ctx.noteCommand(`${tool} -${level} --rsyncable --no-name -c ${input}`);
    // Streamed through us so the output is hashed while it is written, not read again.
    const out = new ArchiveFile(ctx.out);
    const child = spawn(tool, [`-${level}`, "--rsyncable", "--no-name", "-c", input], { stdio: ["ignore", "pipe", "pipe"] });
    const untrack = ctx.trackChild(child.pid!);
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    try {
      for await (const chunk of child.stdout) out.write(chunk);
    } catch (error) {
      out.abandon();
      throw error;
    }
    const code: number = await new Promise((resolve) => child.on("close", resolve));
    untrack();
    if (code !== 0) {
      out.abandon();
      ctx.log(stderr); // the failure report shows the log's last lines
      throw exitFailure(code);
    }
    ctx.trustOutputHash(out.close());
  }, { kind: "gz", options: { of, level } });
}
