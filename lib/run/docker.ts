/**
 * load.docker(image) and run.docker(image): the cookbook's default.load.do and
 * default.rundocker.do. The image is run by its ID (the config digest, or the manifest
 * digest on containerd-backed Docker), never by a layer id.
 */
import * as fs from "node:fs";
import type { BuildContext } from "../engine/context.ts";
import { CrecipeError, exitFailure } from "../engine/errors.ts";
import { type Node, target } from "../engine/node.ts";
import { $ } from "../runtime.ts";
import type { ImageValue } from "../targets/image.ts";
import { need } from "./tools.ts";

async function docker(ctx: { name: string }): Promise<string> {
  const bin = await need("docker", ctx.name);
  const info = await $({ nothrow: true })`${bin} info --format {{.ServerVersion}}`;
  if (info.exitCode !== 0) {
    throw new CrecipeError(`the Docker daemon is not reachable (${info.stderr.trim().split("\n").at(-1)})`, {
      target: ctx.name,
      fix: "start it (sudo systemctl start docker, or sudo dockerd &) and make sure you may use its socket",
    });
  }
  return bin;
}

/** The ID Docker knows the image by, or undefined when it is not loaded. */
async function loadedId(bin: string, value: ImageValue): Promise<string | undefined> {
  for (const id of [value.id, value.manifest]) {
    const r = await $({ nothrow: true })`${bin} image inspect --format {{.Id}} ${id}`;
    if (r.exitCode === 0) return r.stdout.trim();
  }
  return undefined;
}

async function ensureLoaded(ctx: BuildContext, image: Node<ImageValue>) {
  const built = await ctx.result(image);
  const bin = await docker(ctx);
  let id = await loadedId(bin, built.value);
  if (!id) {
    await $`${bin} load -i ${built.path!}`;
    id = await loadedId(bin, built.value);
    if (!id) throw new CrecipeError(`docker load of ${built.path} did not register ${built.value.id}`, { target: ctx.name });
  }
  return { bin, id };
}

/** NAME.load: the image loaded into Docker; its value is the ID Docker uses. */
export function loadDocker(image: Node<ImageValue>): Node<string> {
  return target(`${image.name.replace(/\.image$/, "")}.load`, async (ctx) => {
    const { id } = await ensureLoaded(ctx, image);
    return id;
  }, { kind: "load", options: { image } });
}

/** NAME.rundocker: stdout of `docker run --rm ID ARGS…`; a nonzero exit fails the target. */
export function runDocker(image: Node<ImageValue>, args: string[] = []): Node {
  const loaded = loadDocker(image);
  return target(`${image.name.replace(/\.image$/, "")}.rundocker`, async (ctx) => {
    await ctx.need(loaded);
    // Loaded again here if the daemon lost it since (pruned, restarted with a new store).
    const { bin, id } = await ensureLoaded(ctx, image);
    const result = await $({ nothrow: true })`${bin} run --rm --network=none ${id} ${args}`;
    if (result.exitCode !== 0) {
      throw exitFailure(result.exitCode);
    }
    fs.writeFileSync(ctx.out, result.stdout);
  }, { kind: "rundocker", options: { image, args } });
}
