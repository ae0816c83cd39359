/**
 * load.docker(image) and run.docker(image): the cookbook's default.load.do and
 * default.rundocker.do. The image is streamed to `docker load` from its directory,
 * leaving out the layers the daemon already has (so after a small change only the new
 * layer travels), and run by its ID (the config digest, or the manifest digest on
 * containerd-backed Docker), never by a layer id.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { BuildContext } from "../engine/types.ts";
import { CommandError, CrecipeError } from "../engine/errors.ts";
import { type Node, resolveTarget, target } from "../engine/node.ts";
import { requireTool } from "../host.ts";
import { $, childProcess } from "../runtime.ts";
import { imageItems, type ImageValue } from "../targets/image.ts";
import { writeTar } from "../targets/tarball.ts";

let reachable: Promise<string> | undefined;
/** The docker command, once the daemon answered (asked once per process). */
function docker(ctx: { name: string }): Promise<string> {
  reachable ??= (async () => {
    const bin = await requireTool("docker", ctx.name);
    const info = await $({ nothrow: true })`${bin} info --format {{.ServerVersion}}`;
    if (info.exitCode !== 0) {
      throw new CrecipeError(`the Docker daemon is not reachable (${info.stderr.trim().split("\n").at(-1)})`, {
        target: ctx.name,
        fix: "start it (sudo systemctl start docker, or sudo dockerd &) and make sure you may use its socket",
      });
    }
    return bin;
  })();
  reachable.catch(() => (reachable = undefined));
  return reachable;
}

/** Images this process saw loaded: config digest → the ID Docker uses. */
const loaded = new Map<string, string>();

/**
 * What the daemon has of `value`, in one `docker image inspect`: the ID it knows the
 * image by (undefined when not loaded), and the image's layers it already has, as a
 * chain from the bottom (those of the image under the same tag, usually the last build).
 */
async function daemonHas(bin: string, value: ImageValue): Promise<{ id?: string; known: Set<string> }> {
  const r = await $({ nothrow: true })`${bin} image inspect --format ${"{{.Id}} {{json .RootFS.Layers}}"} ${value.id} ${value.manifest} ${value.tag}`;
  const known = new Set<string>();
  let id: string | undefined;
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    const space = line.indexOf(" ");
    const theirs: string[] = JSON.parse(line.slice(space + 1) || "[]") ?? [];
    const same = theirs.length === value.layers.length && theirs.every((l, i) => l === `sha256:${value.layers[i]}`);
    const it = line.slice(0, space);
    if (same && (it === value.id || it === value.manifest)) id ??= it;
    for (let i = 0; i < value.layers.length && theirs[i] === `sha256:${value.layers[i]}`; i++) known.add(value.layers[i]);
  }
  return { id, known };
}

/** `docker load` fed the image's tar from its directory, without the blobs in `omit`. */
async function streamLoad(ctx: BuildContext, bin: string, dir: string, value: ImageValue, omit: Set<string>): Promise<{ code: number | null; output: string }> {
  const log = path.join(ctx.tmp, `load.${omit.size}.log`);
  const logFd = fs.openSync(log, "w");
  ctx.noteCommand(`${bin} load < (tar of ${path.basename(dir)}${omit.size ? `, without ${omit.size} layer(s) the daemon has` : ""})`);
  const child = childProcess().spawn(bin, ["load"], { stdio: ["pipe", logFd, logFd] });
  fs.closeSync(logFd);
  const untrack = child.pid ? ctx.trackChild(child.pid) : () => {};
  let gone = false;
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => ((gone = true), resolve(code)));
  });
  const stdin = child.stdin!;
  stdin.on("error", () => {});
  const stopped = new Error("docker load stopped reading");
  try {
    await writeTar({
      write: async (data) => {
        if (gone) throw stopped;
        if (!stdin.write(data)) await Promise.race([new Promise((r) => stdin.once("drain", r)), exited]);
      },
    }, imageItems(dir, omit), value.created ?? 0, ctx.name);
  } catch (error) {
    if (error !== stopped) throw error;
  }
  stdin.end();
  const code = await exited;
  untrack();
  const output = fs.readFileSync(log, "utf8");
  ctx.log(output);
  return { code, output };
}

async function ensureLoaded(ctx: BuildContext, image: Node<ImageValue>) {
  const built = await ctx.result(image);
  const bin = await docker(ctx);
  const seen = loaded.get(built.value.id);
  if (seen) return { bin, id: seen };
  let { id, known } = await daemonHas(bin, built.value);
  if (!id) {
    let result = await streamLoad(ctx, bin, built.path!, built.value, known);
    if (result.code !== 0 && known.size) {
      // The daemon wanted the layers after all (a containerd image store may): send all.
      result = await streamLoad(ctx, bin, built.path!, built.value, new Set());
    }
    if (result.code !== 0) throw new CommandError(result.code, { fix: "see the log above: is the daemon's disk full?" });
    id = (await daemonHas(bin, built.value)).id;
    if (!id) throw new CrecipeError(`docker load of ${built.path} did not register ${built.value.id}`, { target: ctx.name });
  }
  loaded.set(built.value.id, id);
  return { bin, id };
}

/** NAME.load: the image loaded into Docker; its value is the ID Docker uses. */
export function loadDocker(target_: Node<ImageValue> | string): Node<string> {
  const image = resolveTarget(target_);
  return target(`${image.name.replace(/\.image$/, "")}.load`, async (ctx) => {
    const { id } = await ensureLoaded(ctx, image);
    return id;
  }, { kind: "load", options: { image }, derived: true });
}

/**
 * NAME.rundocker: stdout of `docker run --rm ID ARGS…`; a nonzero exit fails the target.
 * The container's writes go to its own layer, removed with it; `readOnly` adds --read-only.
 */
export function runDocker(target_: Node<ImageValue> | string, args: string[] = [], options: { readOnly?: boolean } = {}): Node {
  const image = resolveTarget(target_);
  const readOnly = options.readOnly ? ["--read-only"] : [];
  const loaded = loadDocker(image);
  return target(`${image.name.replace(/\.image$/, "")}.rundocker`, async (ctx) => {
    await ctx.result(loaded);
    // Loaded again here if the daemon lost it since (pruned, restarted with a new store).
    const { bin, id } = await ensureLoaded(ctx, image);
    const result = await $({ nothrow: true })`${bin} run --rm --network=none ${readOnly} ${id} ${args}`;
    if (result.exitCode !== 0) {
      throw new CommandError(result.exitCode, { signal: result.signal ?? undefined });
    }
    fs.writeFileSync(ctx.out, result.stdout);
  }, { kind: "rundocker", options: readOnly.length ? { image, args, readOnly: true } : { image, args }, derived: true });
}
