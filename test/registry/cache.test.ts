/**
 * The shared cache (--cache): out dirs stand for machines, a loopback registry for the
 * team's. What one machine built, another takes instead of building it, byte for byte;
 * an output built from other inputs is never taken; a damaged blob is found and the
 * target built; a read-only client stores nothing; a registry that dies while an output
 * is stored leaves the build fine and nothing half-visible.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { spawn, spawnSync } from "node:child_process";
import { crecipeAsync, repo, tempDir, write, isRoot, hasTestUser, asTestUser } from "../helpers.ts";
import { blobFile, type Loopback, skipRegistry, startRegistry } from "./loopback.ts";

const simple = path.join(repo, "recipes/simple.ts");
const targets = ["simpleImage", "libs.layer", "simple.layer"];

/** Every file under `dir` (relative path → sha256, or "-> target" for a symlink), for comparing two outputs. */
function contents(dir: string): Record<string, string> {
  const found: Record<string, string> = {};
  const walk = (rel: string) => {
    const full = path.join(dir, rel);
    const st = fs.lstatSync(full);
    if (st.isSymbolicLink()) found[rel] = `-> ${fs.readlinkSync(full)}`;
    else if (st.isDirectory()) {
      found[rel + "/"] = (st.mode & 0o7777).toString(8);
      for (const name of fs.readdirSync(full).sort()) walk(rel ? `${rel}/${name}` : name);
    } else found[rel] = `${(st.mode & 0o7777).toString(8)} ${createHash("sha256").update(fs.readFileSync(full)).digest("hex")}`;
  };
  walk("");
  return found;
}

/** crecipe in the background: the registry's proxy runs in this process, so nothing here may block. */
const crecipe = async (cwd: string, args: string[], env: Record<string, string> = {}) => {
  const r = await crecipeAsync(cwd, args, env).done;
  return { status: r.code, stderr: r.err };
};

const events = (file: string) => fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));

/** A base and a snapshot of it with deletions (whiteouts), a read-only directory, links. */
const snapshotRecipe = `
import { fs, layer } from ${JSON.stringify(path.join(repo, "lib/mod.ts"))};
export const base = fs("base", async (root) => {
  await root.write("etc/conf", "conf");
  await root.write("etc/gone", "gone");
  await root.write("dir/sub/file", "deep");
  await root.write("ro/inside", "kept");
  await root.chmod("ro", 0o555);
  await root.symlink("../etc/conf", "/dir/link");
});
export const snap = fs("snap", async (root) => {
  await root.from(base);
  await root.remove("etc/gone");
  await root.remove("dir/sub", { recursive: true });
  await root.write("etc/new", "new");
});
export default [layer(base), layer(snap, base)];
`;

describe("a shared cache in a registry", { skip: skipRegistry }, () => {
  let registry: Loopback;
  const work = tempDir();
  let cache: string;

  before(async () => {
    registry = await startRegistry();
    cache = `registry://${registry.host}/team/cache`;
  });
  after(() => registry?.stop());

  it("machine A builds and stores; machine B builds nothing and gets the same bytes", async () => {
    const a = await crecipe(work, ["-o", "A", "--cache", cache, simple, ...targets]);
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stderr, /\d+ built, 0 up to date/);
    assert.ok(registry.requests.some((r) => r.method === "PUT" && /\/manifests\/i-[0-9a-f]{64}$/.test(r.url) && r.status === 201), "outputs stored");

    const b = await crecipe(work, ["-o", "B", "--cache", cache, "--json=B.events", simple, ...targets]);
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stderr, /0 built, \d+ from the cache/);
    const log = events(path.join(work, "B.events"));
    assert.deepEqual(log.filter((e) => e.event === "command"), [], "no builder ran a command");
    const built = log.filter((e) => e.event === "built");
    assert.ok(built.length >= 6, `${built.length} targets`);
    for (const e of built) assert.equal(e.cache, `${registry.host}/team/cache`, `${e.target} came from the cache`);
    for (const name of ["hello", "libs.layer", "simple.layer"]) {
      assert.deepEqual(fs.readFileSync(path.join(work, "B", name)), fs.readFileSync(path.join(work, "A", name)), name);
    }
    for (const name of ["simple", "libs"]) assert.deepEqual(contents(path.join(work, "B", name)), contents(path.join(work, "A", name)), name);
    assert.equal(fs.statSync(path.join(work, "B/hello")).mode & 0o7777, fs.statSync(path.join(work, "A/hello")).mode & 0o7777, "a program from the cache stays executable");
    assert.deepEqual(contents(path.join(work, "B", "simple.image")), contents(path.join(work, "A", "simple.image")), "the image");
    const stateOf = (dir: string, name: string) => JSON.parse(fs.readFileSync(path.join(work, dir, ".crecipe/state", `${name}.json`), "utf8"));
    for (const name of ["libs", "simple.image", "libs.layer"]) assert.equal(stateOf("B", name).stamp, stateOf("A", name).stamp, name);

    // B is now up to date by itself: a second run there is a no-op.
    const again = await crecipe(work, ["-o", "B", "--cache", cache, simple, ...targets]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /0 built, \d+ up to date/);
  });

  it("never takes an output built from other inputs", async () => {
    const recipe = (dir: string) => {
      write(work, `${dir}/r.ts`, `
import { file } from ${JSON.stringify(path.join(repo, "lib/mod.ts"))};
import * as nfs from "node:fs";
export default file("greeting", async (out, ctx) => {
  const text = await ctx.read(${JSON.stringify(path.join(work, dir, "input.txt"))});
  nfs.writeFileSync(out, "greeting: " + text);
});
`);
    };
    // Two machines with the recipe at the same place (as in a CI fleet): one input file differs.
    recipe("m");
    write(work, "m/input.txt", "hello");
    const first = await crecipe(path.join(work, "m"), ["-o", "C", "--cache", cache, "r.ts"]);
    assert.equal(first.status, 0, first.stderr);
    write(work, "m/input.txt", "bonjour");
    const second = await crecipe(path.join(work, "m"), ["-o", "D", "--cache", cache, "r.ts"]);
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stderr, /1 built/);
    assert.equal(fs.readFileSync(path.join(work, "m/D/greeting"), "utf8"), "greeting: bonjour");
    // And the first input again: both versions are in the cache now, each under its own key.
    write(work, "m/input.txt", "hello");
    const third = await crecipe(path.join(work, "m"), ["-o", "E", "--cache", cache, "r.ts"]);
    assert.equal(third.status, 0, third.stderr);
    assert.match(third.stderr, /0 built, 1 from the cache/);
    assert.equal(fs.readFileSync(path.join(work, "m/E/greeting"), "utf8"), "greeting: hello");
  });

  it("finds a damaged blob, builds the target instead, and gets it right", async () => {
    // The libs tree's blob: the largest tar blob the cache holds.
    const blobs = path.join(registry.storage, "docker/registry/v2/blobs/sha256");
    const all = fs.readdirSync(blobs).flatMap((p) => fs.readdirSync(path.join(blobs, p)).map((d) => `sha256:${d}`));
    const tars = all.filter((d) => fs.readFileSync(blobFile(registry.storage, d)).subarray(257, 262).toString() === "ustar");
    const libs = tars.sort((x, y) => fs.statSync(blobFile(registry.storage, y)).size - fs.statSync(blobFile(registry.storage, x)).size)[0];
    const file = blobFile(registry.storage, libs);
    const data = fs.readFileSync(file);
    data[data.length - 2048] ^= 0xff; // a byte of the last file's content
    fs.writeFileSync(file, data);
    const r = await crecipe(work, ["-o", "F", "--cache", cache, "--cache-read-only", simple, ...targets]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /damaged/);
    assert.match(r.stderr, /[1-9]\d* built/);
    for (const name of ["libs.layer", "simple.layer"]) assert.deepEqual(fs.readFileSync(path.join(work, "F", name)), fs.readFileSync(path.join(work, "A", name)), name);
    assert.deepEqual(contents(path.join(work, "F", "simple.image")), contents(path.join(work, "A", "simple.image")));
  });

  it("read-only (CRECIPE_SHARED_CACHE_READ_ONLY=1): takes, and stores nothing", async () => {
    recipeWithVersion(work, "ro", "one");
    const before = registry.requests.length;
    // From the environment this time, as a CI job would set it.
    const r = await crecipe(path.join(work, "ro"), ["-o", "G", "r.ts"], { CRECIPE_SHARED_CACHE: cache, CRECIPE_SHARED_CACHE_READ_ONLY: "1" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /1 built/);
    const writes = registry.requests.slice(before).filter((q) => q.method !== "GET" && q.method !== "HEAD");
    assert.deepEqual(writes, [], "no write to the registry");
    assert.ok(registry.requests.slice(before).some((q) => q.method === "GET" && q.url.includes("/manifests/k-")), "the cache was looked up");
  });

  it("a registry that dies while an output is stored: the build stands, nothing half-visible", async () => {
    recipeWithVersion(work, "dies", "two");
    registry.killWhen((method, url) => method === "PUT" && /\/manifests\/i-/.test(url));
    const r = await crecipe(path.join(work, "dies"), ["-o", "H", "--cache", cache, "r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /not stored in the cache/);
    assert.equal(fs.readFileSync(path.join(work, "dies/H/versioned"), "utf8"), "two");
    await registry.restart();
    // Another machine finds nothing for it (no record points at a half-stored output), builds it, and stores it.
    const other = await crecipe(path.join(work, "dies"), ["-o", "I", "--cache", cache, "r.ts"]);
    assert.equal(other.status, 0, other.stderr);
    assert.match(other.stderr, /1 built/);
    const third = await crecipe(path.join(work, "dies"), ["-o", "J", "--cache", cache, "r.ts"]);
    assert.match(third.stderr, /0 built, 1 from the cache/);
  });

  it("an unprivileged user takes a snapshot with whiteouts and a read-only directory", { skip: isRoot && hasTestUser ? false : "needs root and the crecipe-test user" }, async () => {
    write(work, "snap/r.ts", snapshotRecipe);
    const a = await crecipe(path.join(work, "snap"), ["-o", "A", "--cache", cache, "r.ts"]);
    assert.equal(a.status, 0, a.stderr);
    const userDir = tempDir();
    fs.chmodSync(userDir, 0o777);
    write(userDir, "r.ts", snapshotRecipe);
    const [command, argv] = asTestUser(["--cache", cache, "r.ts"]);
    const child = spawn(command, argv, { cwd: userDir });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const code = await new Promise((resolve) => child.on("close", resolve));
    assert.equal(code, 0, err);
    assert.match(err, /0 built, 6 from the cache/);
    for (const name of ["base.layer", "snap.layer"]) assert.deepEqual(fs.readFileSync(path.join(userDir, "out", name)), fs.readFileSync(path.join(work, "snap/A", name)), name);
    const st = fs.lstatSync(path.join(userDir, "out/snap/etc/gone"));
    assert.ok(st.isCharacterDevice() && st.rdev === 0, "the whiteout");
    assert.equal(fs.statSync(path.join(userDir, "out/base/ro")).mode & 0o777, 0o555);
    assert.equal(fs.statSync(path.join(userDir, "out/base/ro/inside")).uid, Number(spawnSync("id", ["-u", "crecipe-test"], { encoding: "utf8" }).stdout));
  });

  it("an unreachable cache: a warning, and the build goes on", async () => {
    recipeWithVersion(work, "gone", "three");
    const r = await crecipe(path.join(work, "gone"), ["-o", "K", "--cache", "registry://127.0.0.1:9/team/cache", "r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /cannot reach the registry 127\.0\.0\.1:9/);
    assert.match(r.stderr, /1 built/);
  });
});

function recipeWithVersion(work: string, dir: string, version: string): void {
  write(work, `${dir}/r.ts`, `
import { file } from ${JSON.stringify(path.join(repo, "lib/mod.ts"))};
import * as nfs from "node:fs";
export default file("versioned", (out) => nfs.writeFileSync(out, ${JSON.stringify(version)}));
`);
}
