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
import { cli, modUrl, repo, tempDir, write } from "../helpers.ts";
import { imageErrors } from "../oci-schemas.ts";

const haveTools = spawnSync("sh", ["-c", "command -v mmdebstrap && command -v qemu-system-x86_64 && docker info"]).status === 0;
const isRoot = process.getuid?.() === 0;
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
    const r = spawnSync("setpriv", ["--reuid=crecipe-test", "--regid=crecipe-test", "--init-groups", "env", "HOME=/home/crecipe-test",
      `SOURCE_DATE_EPOCH=${EPOCH}`, `CRECIPE_CACHE=${path.join(userDir, "cache")}`, process.execPath, cli, "-o", path.join(userDir, "out"), userRecipe, "debianImage", "debian.runlocal"], { cwd: userDir, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.notEqual(fs.statSync(path.join(userDir, "out/debian.image")).uid, 0);
    for (const f of ["debootstrap.layer", "system.layer", "debian.layer", "debian.image/manifest.json"]) {
      assert.ok(fs.readFileSync(path.join(userDir, "out", f)).equals(fs.readFileSync(path.join(work, "a", f))), `${f} differs`);
    }
    assert.equal(count(path.join(userDir, "out/debian.runlocal")), count(path.join(work, "a/debian.runlocal")));
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
