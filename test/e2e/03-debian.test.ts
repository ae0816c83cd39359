/**
 * recipes/debian.ts, the slow group: a real Debian minbase by mmdebstrap, counted from a
 * chroot, a VM (TCG) and Docker; bit-identical across clean builds and across root and
 * an unprivileged user; an /init edit rebuilds only the app's side; whiteouts hold.
 * The downloaded .debs are cached for this run only (CRECIPE_CACHE in a temp dir).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { cli, modUrl, repo, tempDir, write, isRoot, crecipeAsTestUser } from "../helpers.ts";
import { cyclonedxErrors } from "../cyclonedx-schema.ts";
import { imageErrors } from "../oci-schemas.ts";

const haveTools = spawnSync("sh", ["-c", "command -v mmdebstrap && command -v qemu-system-x86_64 && docker info"]).status === 0;
const EPOCH = "1700000000";

describe("recipes/debian.ts", { skip: haveTools && isRoot ? false : "needs root, mmdebstrap, qemu and a Docker daemon (npm test sets them up)" }, () => {
  const work = tempDir("crecipe-debian-");
  const cache = path.join(work, "cache");
  const env = { ...process.env, SOURCE_DATE_EPOCH: EPOCH, CRECIPE_CACHE: cache };
  // A copy of the recipe that imports crecipe by absolute path, so the test can edit it.
  const recipe = write(work, "debian.ts", fs.readFileSync(path.join(repo, "recipes/debian.ts"), "utf8").replace(`"../lib/mod.ts"`, JSON.stringify(modUrl)));
  const build = (out: string, ...args: string[]) => {
    const r = spawnSync(process.execPath, [cli, "-o", out, recipe, ...args], { cwd: work, encoding: "utf8", env });
    assert.equal(r.status, 0, r.stderr);
    return r;
  };
  const built = (stderr: string) => [...stderr.matchAll(/^crecipe +(\S+)$/gm)].map((m) => m[1]).sort();
  const count = (file: string) => Number(fs.readFileSync(file, "utf8").trim());

  before(() => build(path.join(work, "a")), { timeout: 600_000 });

  it("counts 70–100 packages from the chroot, the VM and Docker", () => {
    for (const run of ["debian.runlocal", "debian.runkvm", "debian.rundocker"]) {
      const n = count(path.join(work, "a", run));
      assert.ok(n >= 70 && n <= 100, `${run}: ${n}`);
    }
    assert.equal(count(path.join(work, "a/debian.runkvm")), count(path.join(work, "a/debian.runlocal")));
  });

  it("every JSON document of the image passes the OCI image-spec schemas", () => {
    assert.deepEqual(imageErrors(path.join(work, "a/debian.image")), []);
  });

  it("two clean builds give bit-identical layers and image", () => {
    build(path.join(work, "b"), "debianImage");
    for (const f of ["debootstrap.layer", "system.layer", "debian.layer", "debian.image/manifest.json", "debian.image/index.json"]) {
      assert.ok(fs.readFileSync(path.join(work, "b", f)).equals(fs.readFileSync(path.join(work, "a", f))), `${f} differs`);
    }
  });

  it("the app is a snapshot of the base: its tree holds only what it changed, and its layers equal a full copy's", () => {
    // The app holds /init; system the app user (root.run useradd) and its home, the docs' whiteout (root.remove).
    assert.deepEqual(fs.readdirSync(path.join(work, "a/debian")).sort(), ["init"]);
    assert.deepEqual(fs.readdirSync(path.join(work, "a/system")).sort(), ["etc", "home", "usr"]);
    const layer = spawnSync("tar", ["-tvf", path.join(work, "a/system.layer")], { encoding: "utf8" }).stdout;
    assert.deepEqual(spawnSync("tar", ["-tf", path.join(work, "a/debian.layer")], { encoding: "utf8" }).stdout, "init\n", "the app's layer is its /init");
    assert.match(layer, /^\S+ 1000\/1000 .* home\/app\/?$/m);
    assert.match(layer, / usr\/share\/\.wh\.doc$/m);
    assert.match(fs.readFileSync(path.join(work, "a/system/etc/passwd"), "utf8"), /^app:x:1000:1000::\/home\/app:\/bin\/sh$/m);
    const copy = write(work, "copy.ts", fs.readFileSync(recipe, "utf8").replace("root.from(base)", "root.from(base, { snapshot: false })"));
    const r = spawnSync(process.execPath, [cli, "-o", path.join(work, "copy"), copy, "debianImage"], { cwd: work, encoding: "utf8", env });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(fs.readdirSync(path.join(work, "copy/system")).length > 10, "the copy holds the whole tree");
    for (const f of ["debootstrap.layer", "system.layer", "system.list", "debian.layer", "debian.list", "debian.image/manifest.json"]) {
      assert.ok(fs.readFileSync(path.join(work, "copy", f)).equals(fs.readFileSync(path.join(work, "a", f))), `${f} differs`);
    }
  });

  it("an unprivileged user (mmdebstrap unshare mode) gets the same bytes", { skip: spawnSync("id", ["crecipe-test"]).status === 0 ? false : "no crecipe-test user (scripts/setup.sh --for-tests)" }, () => {
    const userDir = tempDir("crecipe-debian-user-");
    fs.chmodSync(userDir, 0o777);
    const userRecipe = write(userDir, "debian.ts", fs.readFileSync(recipe, "utf8"));
    const r = crecipeAsTestUser(userDir, ["-o", path.join(userDir, "out"), userRecipe, "debianImage", "debian.runlocal"], { SOURCE_DATE_EPOCH: EPOCH, CRECIPE_CACHE: path.join(userDir, "cache") });
    assert.equal(r.status, 0, r.stderr);
    assert.notEqual(fs.statSync(path.join(userDir, "out/debian.image")).uid, 0);
    for (const f of ["debootstrap.layer", "system.layer", "debian.layer", "debian.image/manifest.json"]) {
      assert.ok(fs.readFileSync(path.join(userDir, "out", f)).equals(fs.readFileSync(path.join(work, "a", f))), `${f} differs`);
    }
    assert.equal(count(path.join(userDir, "out/debian.runlocal")), count(path.join(work, "a/debian.runlocal")));
  });

  // Unpacked by umoci: every path, its type, mode, owner, size, link and content.
  const unpacked = (image: string): string => {
    const dir = tempDir("crecipe-unpack-");
    const u = spawnSync("umoci", ["unpack", "--rootless", "--image", image, path.join(dir, "b")], { encoding: "utf8" });
    assert.equal(u.status, 0, u.stderr);
    const list = spawnSync("sh", ["-c", "cd rootfs && find . -printf '%p %y %m %U:%G %s %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum"], { cwd: path.join(dir, "b"), encoding: "utf8", maxBuffer: 1 << 28 });
    assert.equal(list.status, 0, list.stderr);
    return list.stdout;
  };
  const groups = (dir: string, name: string): { name: string; digest: string; size: number; packages: string[] }[] =>
    JSON.parse(fs.readFileSync(path.join(work, dir, `${name}.pkglayers/layers.json`), "utf8"));

  it("packageLayers: at most 10 layers that unpack to exactly the tree, run in Docker, the same bytes twice", () => {
    build(path.join(work, "a"), "debianPackages", "debianImage");
    const split = groups("a", "debian");
    assert.ok(split.length <= 10 && split.length >= 5, `${split.length} layers`);
    assert.equal(split.at(-1)!.name, "top");
    assert.ok(split.some((g) => g.packages.includes("perl-base")), "perl has a layer of its own");
    assert.deepEqual(imageErrors(path.join(work, "a/debian-packages.image")), []);
    assert.equal(unpacked(path.join(work, "a/debian-packages.image")), unpacked(path.join(work, "a/debian.image")), "the same tree as the three-layer image");
    const run = write(work, "pkgrun.ts", `import { run } from ${JSON.stringify(modUrl)};\nimport { debianPackages } from ${JSON.stringify(recipe)};\nexport default run.docker(debianPackages);\n`);
    const r = spawnSync(process.execPath, [cli, "-o", path.join(work, "a"), run], { cwd: work, encoding: "utf8", env });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(count(path.join(work, "a/debian-packages.rundocker")), count(path.join(work, "a/debian.runlocal")));
    build(path.join(work, "b"), "debianPackages");
    assert.deepEqual(groups("b", "debian"), split, "a second clean build: the same layers");
    assert.ok(fs.readFileSync(path.join(work, "b/debian-packages.image/index.json")).equals(fs.readFileSync(path.join(work, "a/debian-packages.image/index.json"))));
  });

  it("packageLayers: one more package changes only its overflow layer and the top; an unchanged layer is not written again", () => {
    write(work, "more.ts", `
import { bootstrap, packageLayers } from ${JSON.stringify(modUrl)};
import { base } from ${JSON.stringify(recipe)};
export const withLess = bootstrap("debootstrap-less", { suite: "bookworm", variant: "minbase", include: ["less"] });
export default [packageLayers(base), packageLayers(withLess)];
`);
    const r = spawnSync(process.execPath, [cli, "-o", path.join(work, "a"), path.join(work, "more.ts")], { cwd: work, encoding: "utf8", env });
    assert.equal(r.status, 0, r.stderr);
    const before = new Map(groups("a", "debootstrap").map((g) => [g.name, g]));
    const after = groups("a", "debootstrap-less");
    const changed = after.filter((g) => before.get(g.name)?.digest !== g.digest);
    const holder = after.find((g) => g.packages.includes("less"))!;
    assert.match(holder.name, /^overflow-\d$/);
    assert.deepEqual(changed.map((g) => g.name).sort(), [holder.name, "top"].sort());
    const full = fs.statSync(path.join(work, "a/debootstrap.layer")).size;
    const fresh = changed.reduce((n, g) => n + g.size, 0);
    assert.ok(fresh < full / 3, `${fresh} new bytes against a ${full}-byte base layer`);

    // An edit of the app's /init: only the top layer is written; the others are the same files.
    const blob = (g: { digest: string }) => path.join(work, "a/debian.pkglayers/blobs/sha256", g.digest);
    const old = groups("a", "debian");
    const inodes = new Map(old.map((g) => [g.name, fs.statSync(blob(g)).ino]));
    const text = fs.readFileSync(recipe, "utf8");
    fs.writeFileSync(recipe, text.replace("dpkg -l | grep -c", "dpkg -l  | grep -c"));
    try {
      build(path.join(work, "a"), "debianPackages");
    } finally {
      fs.writeFileSync(recipe, text); // the next test edits the recipe as it was
    }
    const now = groups("a", "debian");
    for (const g of now) {
      if (g.name === "top") assert.notEqual(g.digest, old.at(-1)!.digest, "the top layer holds /init");
      else assert.equal(fs.statSync(blob(g)).ino, inodes.get(g.name), `${g.name} was not written again`);
    }
  });

  it("sbom: every installed package (as dpkg-query says), valid CycloneDX 1.5, the same bytes twice; attached, the image digest stays", () => {
    write(work, "sbom.ts", `
import { attach, packageLayers, sbom } from ${JSON.stringify(modUrl)};
import { base, debian, debianPackages } from ${JSON.stringify(recipe)};
export const baseSbom = sbom(packageLayers(base));
export const debianSbom = sbom(packageLayers(debian, { budget: 10 }));
export default [baseSbom, debianSbom, attach(debianPackages, debianSbom)];
`);
    for (const out of ["a", "b"]) {
      const r = spawnSync(process.execPath, [cli, "-o", path.join(work, out), path.join(work, "sbom.ts")], { cwd: work, encoding: "utf8", env });
      assert.equal(r.status, 0, r.stderr);
    }
    const doc = JSON.parse(fs.readFileSync(path.join(work, "a/debian.cdx.json"), "utf8"));
    assert.deepEqual(cyclonedxErrors(doc), []);
    assert.ok(fs.readFileSync(path.join(work, "b/debian.cdx.json")).equals(fs.readFileSync(path.join(work, "a/debian.cdx.json"))), "the same bytes from a second clean build");
    assert.equal(doc.metadata.timestamp, new Date(Number(EPOCH) * 1000).toISOString().replace(/\.000Z$/, "Z"));
    const q = spawnSync("dpkg-query", [`--admindir=${path.join(work, "a/debootstrap/var/lib/dpkg")}`, "-W", "-f", "${Package} ${Version} ${Architecture}\\n"], { encoding: "utf8" });
    assert.equal(q.status, 0, q.stderr);
    const prop = (c: { properties: { name: string; value: string }[] }, name: string) => c.properties.find((p) => p.name === name)?.value;
    const listed = doc.components.map((c: { name: string; version: string; properties: { name: string; value: string }[] }) => `${c.name} ${c.version} ${prop(c, "crecipe:architecture")}`);
    assert.deepEqual(listed.sort(), q.stdout.trim().split("\n").sort());
    const layers = new Set(groups("a", "debian").map((g) => `sha256:${g.digest}`));
    for (const c of doc.components) assert.ok(layers.has(prop(c, "crecipe:layer")!), `${c.name} names a layer of the image`);
    // The base still has its copyright files (the system removes /usr/share/doc): licenses from DEP-5 ones.
    const baseDoc = JSON.parse(fs.readFileSync(path.join(work, "a/debootstrap.cdx.json"), "utf8"));
    assert.deepEqual(cyclonedxErrors(baseDoc), []);
    const licensed = baseDoc.components.filter((c: { licenses?: unknown[] }) => c.licenses?.length);
    assert.ok(licensed.length >= 10, `${licensed.length} packages with licenses`);
    assert.ok(baseDoc.components.find((c: { name: string }) => c.name === "dpkg").licenses.some((l: { license: { id?: string } }) => l.license.id === "GPL-2.0-or-later"));

    const image = JSON.parse(fs.readFileSync(path.join(work, "a/debian-packages.image/index.json"), "utf8"));
    const attached = JSON.parse(fs.readFileSync(path.join(work, "a/debian-packages.attached/index.json"), "utf8"));
    assert.equal(attached.manifests[0].digest, image.manifests[0].digest, "the image manifest is the same");
    const artifact = attached.manifests.find((m: { artifactType?: string }) => m.artifactType === "application/vnd.cyclonedx+json");
    const blob = (d: string) => JSON.parse(fs.readFileSync(path.join(work, "a/debian-packages.attached/blobs/sha256", d.replace("sha256:", "")), "utf8"));
    const manifest = blob(artifact.digest);
    assert.equal(manifest.subject.digest, image.manifests[0].digest);
    assert.deepEqual(blob(manifest.layers[0].digest), doc);
    assert.deepEqual(imageErrors(path.join(work, "a/debian-packages.attached")), []);
  });

  it("editing the app's /init rebuilds the app layer, the image and the runs, not the base", () => {
    const baseInode = fs.statSync(path.join(work, "a/debootstrap")).ino;
    fs.writeFileSync(recipe, fs.readFileSync(recipe, "utf8").replace("dpkg -l | grep -c ^ii", "dpkg -l | grep -c '^ii '"));
    const r = build(path.join(work, "a"));
    assert.deepEqual(built(r.stderr), [
      "debian", "debian.image", "debian.image.gz", "debian.initrd", "debian.layer", "debian.list",
      "debian.load", "debian.rundocker", "debian.runkvm", "debian.runlocal",
    ]);
    assert.ok(count(path.join(work, "a/debian.rundocker")) >= 70);
    assert.equal(fs.statSync(path.join(work, "a/debootstrap")).ino, baseInode, "the base tree was not touched");
  });

  it("a file the app removes is absent in docker run (a whiteout)", () => {
    write(work, "slim.ts", `
import { fs, image, layer, run } from ${JSON.stringify(modUrl)};
import { base } from ${JSON.stringify(recipe)};
import { rmSync } from "node:fs";
export const slim = fs("slim", async (root) => {
  await root.from(base);
  rmSync(root.path("/etc/debian_version"));
  await root.write("/init", "#!/bin/sh\\nif [ -e /etc/debian_version ]; then echo present; else echo gone; fi\\n", 0o755);
});
export default run.docker(image("slim", [layer(base), layer(slim, base)]));
`);
    const r = spawnSync(process.execPath, [cli, "-o", path.join(work, "a"), "slim.ts"], { cwd: work, encoding: "utf8", env });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(work, "a/slim.rundocker"), "utf8"), "gone\n");
    assert.ok(!built(r.stderr).includes("debootstrap"), "the base is shared, not rebuilt");
    assert.ok(fs.existsSync(path.join(work, "a/debootstrap/etc/debian_version")), "the base keeps its file");
  });
});
