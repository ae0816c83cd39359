/**
 * push() and pull() against a real registry on loopback: recipes/simple.ts's image pushed,
 * pulled by Docker and run; pushed again without a blob uploaded; mounted into another
 * repository; pulled back by crecipe as the base of a new image that Docker runs; a
 * tampered blob is an error and no output.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { crecipeAsync, repo, tempDir, write } from "../helpers.ts";
import { blobFile, type Loopback, skipRegistry, startRegistry } from "./loopback.ts";

/** crecipe in a child process, the event loop free meanwhile (the proxy runs in this process). */
const crecipe = async (cwd: string, args: string[], env: Record<string, string> = {}) => {
  const r = await crecipeAsync(cwd, args, env).done;
  return { status: r.code, stderr: r.err, stdout: r.out };
};
const sh = (command: string) => spawnSync("sh", ["-c", command], { encoding: "utf8" });
const shAsync = (command: string) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn("sh", ["-c", command]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
const dockerUp = sh("docker info").status === 0;
const mod = JSON.stringify(path.join(repo, "lib/mod.ts"));
const simple = JSON.stringify(path.join(repo, "recipes/simple.ts"));

describe("push and pull", { skip: skipRegistry }, () => {
  let registry: Loopback;
  const work = tempDir();
  const out = path.join(work, "out");
  const recipe = path.join(work, "push.ts");
  const value = (name: string) => JSON.parse(fs.readFileSync(path.join(out, ".crecipe", "state", `${name}.json`), "utf8"));

  before(async () => {
    registry = await startRegistry();
    write(work, "push.ts", `import { push } from ${mod};
import { simpleImage } from ${simple};
export const pushed = push(simpleImage, process.env.REF!);
export const again = push(simpleImage, process.env.REF2 ?? "unused/x:1", { name: "again.push" });
export default pushed;
`);
  });
  after(() => registry?.stop());

  it("pushes recipes/simple.ts's image; docker pulls it from the registry and it prints Hello, world!", { skip: dockerUp ? false : "no Docker daemon" }, async () => {
    const ref = `${registry.host}/simple:1`;
    const r = await crecipe(work, ["-o", out, recipe], { REF: ref });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(registry.uploads() >= 3, `config + 2 layers uploaded: ${JSON.stringify(registry.requests)}`);
    // The manifest came last.
    const last = registry.requests.filter((q) => q.method === "PUT").at(-1)!;
    assert.match(last.url, /\/v2\/simple\/manifests\/1$/);
    const pull = await shAsync(`docker pull -q ${ref}`);
    assert.equal(pull.status, 0, pull.stderr);
    try {
      const run = sh(`docker run --rm ${ref}`);
      assert.equal(run.stdout, "Hello, world!\n", run.stderr);
      // Docker sees the image ID image() computed: the diff_ids are the uncompressed tars'.
      const id = sh(`docker image inspect -f '{{.Id}}' ${ref}`).stdout.trim();
      assert.equal(id, JSON.parse(fs.readFileSync(path.join(out, ".crecipe", "state", "simple.image.json"), "utf8")).value.id);
    } finally {
      sh(`docker rmi -f ${ref}`);
    }
  });

  it("a second push (its output gone) uploads no blob, and pushes the same manifest", async () => {
    const ref = `${registry.host}/simple:1`;
    if (!fs.existsSync(path.join(out, "simple.push"))) assert.equal((await crecipe(work, ["-o", out, recipe], { REF: ref })).status, 0);
    const digest = value("simple.push").value.digest;
    const uploads = registry.uploads();
    const before = registry.requests.length;
    fs.rmSync(path.join(out, "simple.push"), { recursive: true });
    const r = await crecipe(work, ["-o", out, recipe], { REF: ref });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(registry.uploads(), uploads, JSON.stringify(registry.requests.slice(before)));
    assert.equal(registry.requests.slice(before).filter((q) => q.method === "POST").length, 0, "no upload even started");
    assert.equal(value("simple.push").value.digest, digest);
    assert.equal(value("simple.push").value.uploaded, 0);
  });

  it("a push to another repository of the same registry mounts the blobs instead of uploading them", async () => {
    const ref = `${registry.host}/simple:1`;
    if (!fs.existsSync(path.join(out, "simple.push"))) assert.equal((await crecipe(work, ["-o", out, recipe], { REF: ref })).status, 0);
    const uploads = registry.uploads();
    const before = registry.requests.length;
    const r = await crecipe(work, ["-o", out, recipe, "again"], { REF: ref, REF2: `${registry.host}/team/copy:2` });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(registry.uploads(), uploads, JSON.stringify(registry.requests.slice(before)));
    const mounts = registry.requests.slice(before).filter((q) => q.method === "POST" && q.url.includes("mount=") && q.status === 201);
    assert.equal(mounts.length, 3, JSON.stringify(registry.requests.slice(before)));
    assert.equal(value("again.push").value.digest, value("simple.push").value.digest);
  });

  it("pulls it back as the base of a new image, which Docker runs", { skip: dockerUp ? false : "no Docker daemon" }, async () => {
    const ref = `${registry.host}/simple:1`;
    if (!fs.existsSync(path.join(out, "simple.push"))) assert.equal((await crecipe(work, ["-o", out, recipe], { REF: ref })).status, 0);
    const other = path.join(work, "out-pull");
    write(work, "pull.ts", `import { fs, image, layer, pull, run } from ${mod};
export const base = pull(process.env.REF!);
export const note = fs("note", async (root) => { await root.write("/note", "built on a pulled base\\n"); });
export const app = image("app", [base, layer(note)], { cmd: ["/bin/sh", "-c", "read line < /note; echo $line; exec /init"] });
export default run.docker(app);
`);
    const r = await crecipe(work, ["-o", other, path.join(work, "pull.ts")], { REF: ref });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(other, "app.rundocker"), "utf8"), "built on a pulled base\nHello, world!\n");
    // The pulled layers are the pushed image's uncompressed tars, byte for byte.
    const pulled = JSON.parse(fs.readFileSync(path.join(other, ".crecipe", "state", "simple-1.pull.json"), "utf8")).value;
    const local = JSON.parse(fs.readFileSync(path.join(out, ".crecipe", "state", "simple.image.json"), "utf8")).value;
    assert.deepEqual(pulled.layers, local.layers);
    assert.equal(pulled.id, local.id);
    assert.equal(pulled.source, `${ref.replace(/:1$/, "")}@${value("simple.push").value.digest}`);
    sh("docker rmi -f app:latest");
  });

  it("crecipe RECIPE IMAGE --push REF pushes the image and prints REF@DIGEST; a non-image is a usage error", async () => {
    const ref = `${registry.host}/cli/simple:2`;
    const r = await crecipe(work, ["-o", out, "-q", path.join(repo, "recipes/simple.ts"), "simpleImage", "--push", ref]);
    assert.equal(r.status, 0, r.stderr);
    const printed = r.stdout.trim();
    assert.match(printed, new RegExp(`^${ref.replace(/[.]/g, "\\.")}@sha256:[0-9a-f]{64}$`));
    const manifest = await new Promise<number>((resolve) => {
      http.get(`http://${registry.host}/v2/cli/simple/manifests/${printed.split("@")[1]}`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } }, (res) => (res.resume(), resolve(res.statusCode!)));
    });
    assert.equal(manifest, 200);
    const wrong = await crecipe(work, ["-o", out, "-q", path.join(repo, "recipes/simple.ts"), "libs", "--push", ref]);
    assert.equal(wrong.status, 2, wrong.stderr);
    assert.match(wrong.stderr, /--push pushes one image; libs is a fs/);
  });

  it("a tampered blob in the registry is an error naming it, and no output", async () => {
    const ref = `${registry.host}/simple:1`;
    if (!fs.existsSync(path.join(out, "simple.push"))) assert.equal((await crecipe(work, ["-o", out, recipe], { REF: ref })).status, 0);
    const pushed = JSON.parse(fs.readFileSync(path.join(out, "simple.push", "pushed.json"), "utf8"));
    const layer = pushed.blobs.at(-1) as string; // simple.layer, gzipped
    const file = blobFile(registry.storage, layer);
    const original = fs.readFileSync(file);
    const bad = Buffer.from(original);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    fs.writeFileSync(file, bad);
    try {
      const other = path.join(work, "out-tampered");
      write(work, "tampered.ts", `import { pull } from ${mod};\nexport default pull(process.env.REF!, { name: "tampered" });\n`);
      const r = await crecipe(work, ["-o", other, path.join(work, "tampered.ts")], { REF: ref });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`layer ${layer} of ${registry.host.replace(/\./g, "\\.")}/simple is corrupt`));
      assert.match(r.stderr, /fix: /);
      assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
      assert.ok(!fs.existsSync(path.join(other, "tampered.pull")), "nothing written");
    } finally {
      fs.writeFileSync(file, original);
    }
  });
});
