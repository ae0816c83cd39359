/**
 * What a user meets first: recipes/simple.ts builds, prints "Hello, world!" from a chroot
 * and from Docker, its image is bit-reproducible and readable by skopeo and umoci.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { crecipe, repo, tempDir } from "../helpers.ts";
import { imageErrors } from "../oci-schemas.ts";

const recipe = path.join(repo, "recipes/simple.ts");
const sh = (command: string, cwd?: string) => spawnSync("sh", ["-c", command], { cwd, encoding: "utf8" });
const dockerUp = sh("docker info").status === 0;

describe("recipes/simple.ts", () => {
  const work = tempDir();
  const out = path.join(work, "out");

  before(() => {
    const r = crecipe(work, ["-o", out, recipe]);
    assert.equal(r.status, 0, r.stderr);
  });

  it("prints Hello, world! from the chroot and from Docker", { skip: dockerUp ? false : "no Docker daemon (run the tests through npm test)" }, () => {
    assert.equal(fs.readFileSync(path.join(out, "libs.runlocal"), "utf8"), "Hello, world!\n");
    assert.equal(fs.readFileSync(path.join(out, "simple.rundocker"), "utf8"), "Hello, world!\n");
  });

  it("a second run builds nothing", () => {
    const r = crecipe(work, ["-o", out, recipe]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, / 0 built, \d+ up to date/);
  });

  it("the layers are what the cookbook says: libraries below, simple on top", () => {
    const list = (layer: string) => sh(`tar -tf ${path.join(out, layer)}`).stdout.split("\n").filter(Boolean);
    assert.deepEqual(list("simple.layer"), ["bin/", "bin/busybox", "bin/dash", "bin/hello", "bin/sh", "init"]);
    const libs = list("libs.layer");
    assert.ok(libs.includes("lib/x86_64-linux-gnu/libc.so.6"), libs.join(" "));
    assert.ok(libs.includes("lib64/ld-linux-x86-64.so.2"), libs.join(" "));
    assert.ok(!libs.some((p) => p.startsWith("bin/")), "libs.layer has only what libs added");
    const manifest = JSON.parse(fs.readFileSync(path.join(out, "simple.image/manifest.json"), "utf8"));
    const layers = manifest[0].Layers.map((l: string) => l.replace("blobs/sha256/", ""));
    const digest = (f: string) => sh(`sha256sum ${path.join(out, f)}`).stdout.split(" ")[0];
    assert.deepEqual(layers, [digest("libs.layer"), digest("simple.layer")]);
    // The image directory holds its layers by hard link, not by copy.
    assert.equal(fs.statSync(path.join(out, "simple.image/blobs/sha256", layers[0])).ino, fs.statSync(path.join(out, "libs.layer")).ino);
  });

  it("two clean builds give identical bytes, whatever TZ, umask and locale", () => {
    const other = path.join(work, "out2");
    const r = spawnSync("sh", ["-c", `umask 077; exec "${process.execPath}" ${repo}/bin/crecipe.js -q -o ${other} ${recipe} simpleImage`], {
      cwd: work,
      encoding: "utf8",
      env: { ...process.env, TZ: "Pacific/Kiritimati", LANG: "C", LC_ALL: "C" },
    });
    assert.equal(r.status, 0, r.stderr);
    for (const f of ["libs.layer", "simple.layer", "simple.image/manifest.json", "simple.image/index.json"]) {
      assert.ok(fs.readFileSync(path.join(other, f)).equals(fs.readFileSync(path.join(out, f))), `${f} differs`);
    }
  });

  it("gz(image) is the gzip of the one-file image that imageTar() writes", () => {
    const script = path.join(work, "tar.ts");
    fs.writeFileSync(script, `import { imageTar } from ${JSON.stringify(path.join(repo, "lib/mod.ts"))};\nimport { simpleImage } from ${JSON.stringify(recipe)};\nexport default imageTar(simpleImage);\n`);
    const r = crecipe(work, ["-o", out, script]);
    assert.equal(r.status, 0, r.stderr);
    const unzipped = spawnSync("gzip", ["-dc", path.join(out, "simple.image.gz")], { maxBuffer: 1 << 30 }).stdout;
    assert.ok(unzipped.equals(fs.readFileSync(path.join(out, "simple.image.tar"))), `${unzipped.length} vs ${fs.statSync(path.join(out, "simple.image.tar")).size}: ${r.stderr}`);
    const names = sh(`tar -tf ${path.join(out, "simple.image.tar")}`).stdout.split("\n").filter(Boolean);
    assert.deepEqual(names.slice(0, 2), ["blobs/", "blobs/sha256/"]);
    assert.deepEqual(names.slice(-3), ["index.json", "manifest.json", "oci-layout"]);
  });

  it("every JSON document of the image passes the OCI image-spec schemas", () => {
    assert.deepEqual(imageErrors(path.join(out, "simple.image")), []);
  });

  it("skopeo inspects it and copies it to a docker-archive; umoci unpacks it rootless", () => {
    const image = path.join(out, "simple.image");
    const inspect = sh(`skopeo inspect oci:${image}`);
    assert.equal(inspect.status, 0, inspect.stderr);
    assert.equal(JSON.parse(inspect.stdout).Layers.length, 2);
    const archive = path.join(work, "simple.docker.tar");
    const copy = sh(`skopeo copy oci:${image} docker-archive:${archive}:simple:latest`);
    assert.equal(copy.status, 0, copy.stderr);
    assert.ok(fs.statSync(archive).size > 1000);
    const bundle = path.join(work, "bundle");
    const unpack = sh(`umoci unpack --rootless --image ${image}:latest ${bundle}`);
    assert.equal(unpack.status, 0, unpack.stderr);
    assert.equal(fs.readlinkSync(path.join(bundle, "rootfs/init")), "bin/hello");
    assert.ok(fs.existsSync(path.join(bundle, "rootfs/lib/x86_64-linux-gnu/libc.so.6")));
  });
});
