/** Deno: the same recipe builds under Deno 2 and shares its state with Node. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { it } from "node:test";
import { chunkIndex, encodeChunkIndex } from "../../lib/formats/chunks.ts";
import { assertListFailed, crecipe, layerWhoseListFails, modUrl, read, repo, tempDir, write } from "../helpers.ts";
import { pseudoRandom, startServe } from "../net/helpers.ts";

const deno = path.join(repo, "node_modules", ".bin", "deno");

function denoCrecipe(cwd: string, args: string[], timeout?: number) {
  const r = spawnSync(deno, ["run", "-A", `--config=${path.join(repo, "deno.json")}`, path.join(repo, "bin", "crecipe.ts"), ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout,
  });
  return r;
}

/** Build `recipe` in a directory under Deno and in another under Node. */
function buildBoth(recipe: string): { byDeno: string; byNode: string } {
  const byDeno = tempDir();
  const byNode = tempDir();
  for (const dir of [byDeno, byNode]) write(dir, "r.ts", recipe);
  const d = denoCrecipe(byDeno, ["r.ts"]);
  assert.equal(d.status, 0, d.stderr);
  const n = crecipe(byNode, ["r.ts"]);
  assert.equal(n.status, 0, n.stderr);
  return { byDeno, byNode };
}

it("a recipe built under Deno is a no-op under Node, and the other way round", () => {
  const dir = tempDir();
  write(dir, "input.txt", "from deno\n");
  write(dir, "r.ts", `
import { file, here, $ } from ${JSON.stringify(modUrl)};
import { readFileSync, writeFileSync } from "node:fs";
export const src = file("src.txt", async (out, ctx) => { writeFileSync(out, await ctx.read(here("input.txt"))); });
export const shout = file("shout.txt", async (out, ctx) => {
  const text = readFileSync(await ctx.need(src), "utf8");
  await $\`printf '%s' \${text.toUpperCase()} > \${out}\`;
});
export default shout;`);
  const first = denoCrecipe(dir, ["r.ts"]);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /2 built, 0 up to date/);
  assert.equal(read(dir, "out/shout.txt"), "FROM DENO\n");
  const node = crecipe(dir, ["r.ts"]);
  assert.equal(node.status, 0, node.stderr);
  assert.match(node.stderr, /0 built, 2 up to date/);
  write(dir, "input.txt", "from node\n");
  assert.match(crecipe(dir, ["r.ts"]).stderr, /2 built, 0 up to date/);
  const again = denoCrecipe(dir, ["r.ts"]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /0 built, 2 up to date/);
  assert.equal(read(dir, "out/shout.txt"), "FROM NODE\n");
});

it("symlinks in a tree: Deno writes the same list and layer bytes as Node", () => {
  const recipe = `
import { fs, layer } from ${JSON.stringify(modUrl)};
export const t = fs("t", async (root) => {
  await root.write("/etc/motd", "hi\\n");
  await root.symlink("/etc/motd", "/abs");
  await root.symlink("../etc/motd", "/etc/rel");
  await root.symlink("caf\\u00e9", "/utf8");
});
export default layer(t);`;
  const { byDeno, byNode } = buildBoth(recipe);
  const list = read(byDeno, "out/t.list");
  assert.match(list, /abs/);
  assert.equal(list, read(byNode, "out/t.list"));
  assert.ok(fs.readFileSync(path.join(byDeno, "out/t.layer")).equals(fs.readFileSync(path.join(byNode, "out/t.layer"))), "same layer bytes");
  const again = crecipe(byDeno, ["r.ts"]);
  assert.match(again.stderr, /0 built, \d+ up to date/, "Node takes Deno's state as is");
});

it("a layer large enough for the packing, hashing and gzip threads: Deno writes the same bytes as Node", () => {
  // Over 16 MiB, a layer is packed and hashed by worker threads, which open files
  // themselves: in Deno a descriptor does not cross threads.
  const recipe = `
import { fs, gz, layer } from ${JSON.stringify(modUrl)};
export const t = fs("t", async (root) => {
  const data = Buffer.alloc(20 << 20);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
  await root.write("/big.bin", data);
  for (let i = 0; i < 300; i++) await root.write(\`/small/f\${i}\`, "x".repeat(i));
});
export default gz(layer(t));`;
  const { byDeno, byNode } = buildBoth(recipe);
  const layer = (dir: string) => fs.readFileSync(path.join(dir, "out/t.layer"));
  const gzipped = (dir: string) => fs.readFileSync(path.join(dir, "out/t.layer.gz"));
  assert.ok(gzipped(byDeno).equals(gzipped(byNode)), "same gz bytes");
  assert.ok(zlib.gunzipSync(gzipped(byDeno)).equals(layer(byDeno)));
  assert.ok(layer(byDeno).length > 20 << 20);
  assert.ok(layer(byDeno).equals(layer(byNode)), "same layer bytes");
  const stamp = (dir: string) => JSON.parse(read(dir, "out/.crecipe/state/t.layer.json")).value.digest;
  assert.equal(stamp(byDeno), stamp(byNode));
});

it("a gzipped initrd: Deno writes the same bytes as Node, one gzip stream of the whole cpio", () => {
  // The runtimes' own zlib differ (Node's and Deno's give other bytes for the same input):
  // crecipe's initrd is gzipped by its own zlib in WebAssembly.
  const recipe = `
import { fs, initrd } from ${JSON.stringify(modUrl)};
export const t = fs("t", async (root) => {
  const data = Buffer.alloc(3 << 20);
  for (let i = 0; i < data.length; i += 64) data.write(\`line \${i} of a file that compresses\\n\`, i);
  await root.write("/data.txt", data);
  await root.write("/init", "#!/bin/sh\\n", 0o755);
});
export default initrd(t, { gzip: true });`;
  const { byDeno, byNode } = buildBoth(recipe);
  const initrd = (dir: string) => fs.readFileSync(path.join(dir, "out/t.initrd"));
  assert.ok(initrd(byDeno).equals(initrd(byNode)), "same initrd bytes");
  assert.ok(initrd(byNode).length < 1 << 20, "compressed");
  const listed = spawnSync("sh", ["-c", "gzip -dc | cpio -t --quiet"], { input: initrd(byNode), encoding: "utf8" });
  assert.equal(listed.status, 0, listed.stderr);
  assert.deepEqual(listed.stdout.trim().split("\n"), ["data.txt", "init", "rdinit"]);
  const whole = initrd(byNode);
  assert.equal(whole.readUInt32LE(whole.length - 4), zlib.gunzipSync(whole).length, "one member: its trailer counts the whole cpio");
});

it("under Deno too, a large tree's layer whose list fails ends the run: the threads started for it hold nothing", () => {
  assertListFailed(denoCrecipe(layerWhoseListFails(), ["r.ts", "big"], 60_000));
});

it("crecipe fetch under Deno: a 24 MiB file from an edited seed (hashed on another thread), the same file", async () => {
  const dir = tempDir();
  const data = pseudoRandom(24 << 20, "deno fetch");
  fs.mkdirSync(path.join(dir, "www"));
  fs.writeFileSync(path.join(dir, "www/file.bin"), data);
  fs.writeFileSync(path.join(dir, "www/file.bin.chunks"), encodeChunkIndex(chunkIndex(data)));
  const seed = Buffer.concat([data.subarray(0, 10 << 20), pseudoRandom(100_000, "an edit"), data.subarray((10 << 20) + 50_000)]);
  fs.writeFileSync(path.join(dir, "seed.bin"), seed);
  const server = await startServe(path.join(dir, "www"));
  try {
    const r = denoCrecipe(dir, ["fetch", `${server.url}file.bin`, "--seed", "seed.bin", "-o", "got.bin", "--json", "-q"]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(fs.readFileSync(path.join(dir, "got.bin")).equals(data), "the same bytes");
    const report = JSON.parse(r.stdout);
    assert.ok(report.fetched < 300_000 && report.reused > data.length - 300_000, `${report.fetched} fetched, ${report.reused} reused`);
  } finally {
    await server.stop();
  }
});

it("the library and the CLI type-check under deno check", () => {
  const r = spawnSync(deno, ["check", `--config=${path.join(repo, "deno.json")}`, "lib/mod.ts", "lib/net.ts", "bin/cli.ts", "bin/verbs.ts"], {
    cwd: repo,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  assert.equal(r.status, 0, r.stderr);
});
