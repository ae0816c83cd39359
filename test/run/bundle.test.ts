/**
 * bundle() and run.runc: simple's image runs /init in runc (as root and rootless); an
 * image's whiteouts are honoured in rootfs/; recorded owners reach rootfs/ when root
 * builds it; config.json passes the runtime-spec schema; a container that cannot start
 * and a runtime that cannot work here are each one line.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { runtimeProblem } from "../../lib/mod.ts";
import { crecipe, modUrl, repo, tempDir, write, isRoot, hasTestUser, crecipeAsTestUser } from "../helpers.ts";
import { runtimeConfigErrors } from "../oci-runtime-schemas.ts";

const runcProblem = await runtimeProblem("runc");
const skipRunc = runcProblem ? `runc: ${runcProblem.why} (${runcProblem.fix})` : false;

const recipe = `
import { bundle, fs, image, layer, run } from ${JSON.stringify(modUrl)};
import { simpleImage } from ${JSON.stringify(path.join(repo, "recipes/simple.ts"))};
export const simpleBundle = bundle(simpleImage);
export const inRunc = run.runc(simpleBundle);

export const base = fs("base", async (root) => {
  await root.copyIn("/bin/busybox", "/bin/");
  await root.symlink("busybox", "/bin/sh");
  await root.write("/etc/keep", "kept\\n");
  await root.write("/etc/gone", "deleted above\\n");
  await root.write("/d/x", "x\\n");
  await root.write("/d/y", "y\\n");
  await root.write("/owned", "mine\\n");
  await root.chown("/owned", 1234, 5678);
});
export const top = fs("top", async (root) => {
  await root.from(base);
  await root.remove("/etc/gone");
  await root.remove("/d", { recursive: true });
  await root.write("/d/z", "z\\n");
  await root.write("/etc/new", "added\\n");
});
export const layered = image("layered", [layer(base), layer(top, base)], { cmd: ["/bin/busybox", "cat", "/etc/keep", "/d/z"] });
export const layeredBundle = bundle(layered);
export const layeredRun = run.runc(layeredBundle);
export const three = run.runc(layeredBundle, { command: ["/bin/sh", "-c", "echo partial; exit 3"], name: "three.runrunc" });
export const missing = run.runc(layeredBundle, { command: ["/no/such/program"], name: "missing.runrunc" });
export const topBundle = bundle(top);
export const nspawnRun = run.nspawn(layeredBundle);
export const crunRun = run.crun(layeredBundle);
`;

describe("bundle() and run.runc", () => {
  const dir = tempDir();
  write(dir, "r.ts", recipe);
  const out = path.join(dir, "out");

  before(() => {
    const r = crecipe(dir, ["r.ts", "simpleBundle", "layeredBundle", "topBundle"]);
    assert.equal(r.status, 0, r.stderr);
  });

  it("a bundle of simple's image runs /init in runc: Hello, world!", { skip: skipRunc }, () => {
    const r = crecipe(dir, ["r.ts", "inRunc"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(out, "simple.runrunc"), "utf8"), "Hello, world!\n");
    assert.equal(fs.readlinkSync(path.join(out, "simple.bundle/rootfs/init")), "bin/hello");
    for (const mountPoint of ["proc", "dev", "sys", "tmp"]) assert.ok(fs.statSync(path.join(out, "simple.bundle/rootfs", mountPoint)).isDirectory());
  });

  it("config.json passes the runtime-spec schema and says what the image says", () => {
    for (const name of ["simple.bundle", "layered.bundle", "top.bundle"]) {
      const config = JSON.parse(fs.readFileSync(path.join(out, name, "config.json"), "utf8"));
      assert.deepEqual(runtimeConfigErrors(config), [], name);
      assert.equal(config.root.readonly, true);
    }
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "simple.bundle/config.json"), "utf8")).process.args, ["/init"]);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "layered.bundle/config.json"), "utf8")).process.args, ["/bin/busybox", "cat", "/etc/keep", "/d/z"]);
  });

  it("a layered image's whiteouts are honoured: deleted files and an emptied directory are gone", () => {
    const rootfs = path.join(out, "layered.bundle/rootfs");
    const layerNames = spawnSync("tar", ["-tf", path.join(out, "top.layer")], { encoding: "utf8" }).stdout;
    assert.match(layerNames, /etc\/\.wh\.gone/, "the layer has a whiteout");
    assert.equal(fs.existsSync(path.join(rootfs, "etc/gone")), false);
    assert.equal(fs.readFileSync(path.join(rootfs, "etc/keep"), "utf8"), "kept\n");
    assert.equal(fs.readFileSync(path.join(rootfs, "etc/new"), "utf8"), "added\n");
    assert.deepEqual(fs.readdirSync(path.join(rootfs, "d")), ["z"]);
    assert.ok(!fs.readdirSync(rootfs, { recursive: true }).some((p) => String(p).includes(".wh.")), "no whiteout file is left");
    // The fs bundle of the same tree (its merged view) has the same files.
    const fsRoot = path.join(out, "top.bundle/rootfs");
    assert.deepEqual(fs.readdirSync(path.join(fsRoot, "d")), ["z"]);
    assert.equal(fs.existsSync(path.join(fsRoot, "etc/gone")), false);
  });

  it("runc runs the layered image's command on that rootfs", { skip: skipRunc }, () => {
    const r = crecipe(dir, ["r.ts", "layeredRun"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(out, "layered.runrunc"), "utf8"), "kept\nz\n");
  });

  it("owners: recorded owners are applied when root builds the bundle, the builder's own when not", () => {
    const image = fs.lstatSync(path.join(out, "layered.bundle/rootfs/owned"));
    const tree = fs.lstatSync(path.join(out, "top.bundle/rootfs/owned"));
    if (isRoot) {
      assert.deepEqual([image.uid, image.gid], [1234, 5678], "from the layer's tar header");
      assert.deepEqual([tree.uid, tree.gid], [1234, 5678], "from the tree's metadata");
    } else {
      assert.deepEqual([image.uid, tree.uid], [process.getuid!(), process.getuid!()]);
    }
  });

  it("a non-zero exit fails the target with its code; a program that is not there is one line", { skip: skipRunc }, () => {
    const three = crecipe(dir, ["r.ts", "three"]);
    assert.equal(three.status, 1);
    assert.match(three.stderr, /FAILED three\.runrunc: .*exit code 3/);
    const missing = crecipe(dir, ["r.ts", "missing"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /FAILED missing\.runrunc: runc could not start layered\.bundle: .*\/no\/such\/program.*no such file or directory\n/);
  });

  it("an unusable runtime fails with one line: target, runtime, why, fix", async () => {
    const crunProblem = await runtimeProblem("crun");
    if (crunProblem) {
      const r = crecipe(dir, ["r.ts", "crunRun"]);
      assert.equal(r.status, 1);
      const line = `FAILED layered.runcrun: crun cannot run containers here: ${crunProblem.why}`;
      assert.ok(r.stderr.includes(line + "\n"), r.stderr);
      assert.ok(r.stderr.includes(`fix:       ${crunProblem.fix}`), r.stderr);
      console.log(`# crun here: ${crunProblem.why}`);
    }
    // systemd-nspawn is root only: as an ordinary user it is unusable everywhere.
    if (!hasTestUser) return;
    const userDir = tempDir();
    fs.chmodSync(userDir, 0o777);
    write(userDir, "r.ts", recipe);
    const r = crecipeAsTestUser(userDir, ["r.ts", "nspawnRun"]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /FAILED layered\.runnspawn: systemd-nspawn runs containers as root only\n/);
    assert.match(r.stderr, /fix: +run crecipe as root, or use run\.runc \(rootless\)/);
  });

  it("rootless: an ordinary user's bundle maps root to them and runs in runc", { skip: !hasTestUser ? "needs root to switch to the crecipe-test user" : skipRunc }, () => {
    const userDir = tempDir();
    fs.chmodSync(userDir, 0o777);
    write(userDir, "r.ts", recipe);
    const r = crecipeAsTestUser(userDir, ["r.ts", "inRunc", "layeredRun"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(userDir, "out/simple.runrunc"), "utf8"), "Hello, world!\n");
    assert.equal(fs.readFileSync(path.join(userDir, "out/layered.runrunc"), "utf8"), "kept\nz\n");
    const config = JSON.parse(fs.readFileSync(path.join(userDir, "out/simple.bundle/config.json"), "utf8"));
    const uid = Number(spawnSync("id", ["-u", "crecipe-test"], { encoding: "utf8" }).stdout);
    assert.deepEqual(config.linux.uidMappings, [{ containerID: 0, hostID: uid, size: 1 }]);
    assert.deepEqual(runtimeConfigErrors(config), []);
    assert.equal(fs.lstatSync(path.join(userDir, "out/layered.bundle/rootfs/owned")).uid, uid, "rootless: the builder owns every file");
  });
});
