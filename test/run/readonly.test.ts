/**
 * The read-only guarantee, runner by runner: a program that writes, deletes, chmods and
 * makes directories leaves out/NAME/ (and a bundle's rootfs/) exactly as they were; with
 * `readOnly: true` its writes fail inside. Runners that cannot work on this host are
 * skipped with the reason.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { runtimeProblem } from "../../lib/mod.ts";
import { crecipe, modUrl, tempDir, write, hasTestUser, NEEDS_TEST_USER, crecipeAsTestUser } from "../helpers.ts";

// Tries the root first (the answer is the output), then changes everything it can.
const SCRIPT = [
  "if /bin/busybox touch /probe; then echo writable; else echo read-only; fi", // stderr: run.local mounts no /dev
  "/bin/busybox echo changed > /etc/data",
  "/bin/busybox rm -f /etc/gone /bin/sh",
  "/bin/busybox chmod 600 /init",
  "/bin/busybox mkdir -p /new/dir && /bin/busybox echo x > /new/dir/file",
  "exit 0",
].join("\n");

const recipe = `
import { bundle, fs, image, layer, run } from ${JSON.stringify(modUrl)};
const tree = (name: string) => fs(name, async (root) => {
  await root.copyIn("/bin/busybox", "/bin/");
  await root.symlink("busybox", "/bin/sh");
  await root.write("/etc/data", "original\\n");
  await root.write("/etc/gone", "delete me\\n");
  await root.write("/init", "#!/bin/sh\\n" + ${JSON.stringify(SCRIPT)} + "\\n", 0o755);
});
const w = tree("w");
const r = tree("r");
export const trees = [w, r];
export const local = run.local(w);
export const localRo = run.local(r, { readOnly: true });
export const kvm = run.kvm(tree("kw"));
export const kvmRo = run.kvm(tree("kr"), { readOnly: true });
const img = image("wi", [layer(w)]);
const rImg = image("ri", [layer(r)]);
export const images = [img, rImg];
export const docker = run.docker(img);
export const dockerRo = run.docker(rImg, [], { readOnly: true });
export const bundles = [bundle(img), bundle(w)];
export const runc = run.runc(bundle(img));
export const runcRo = run.runc(bundle(img), { readOnly: true, name: "wi.runrunc-ro" });
export const runcFs = run.runc(bundle(w), { name: "w.runrunc" });
export const crun = run.crun(bundle(img));
export const crunRo = run.crun(bundle(img), { readOnly: true, name: "wi.runcrun-ro" });
export const nspawn = run.nspawn(bundle(img));
export const nspawnRo = run.nspawn(bundle(img), { readOnly: true, name: "wi.runnspawn-ro" });
export const podman = run.podman(img);
export const podmanRo = run.podman(rImg, { readOnly: true });
`;

/** Every entry under `dir`: type, mode, owner, size, mtime and content hash. */
function snapshot(dir: string): string[] {
  const lines: string[] = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const p = path.join(rel, name);
      const st = fs.lstatSync(path.join(dir, p));
      const content = st.isFile() ? createHash("sha256").update(fs.readFileSync(path.join(dir, p))).digest("hex") : st.isSymbolicLink() ? fs.readlinkSync(path.join(dir, p)) : "";
      lines.push(`${p} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${content}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk("");
  return lines;
}

const dockerUp = spawnSync("sh", ["-c", "docker info"]).status === 0;
const haveQemu = spawnSync("sh", ["-c", "command -v qemu-system-x86_64 && ls /boot/vmlinuz-*"]).status === 0;
const skipFor = async (runtime: "runc" | "crun" | "nspawn" | "podman") => {
  const problem = await runtimeProblem(runtime);
  return problem ? `${runtime}: ${problem.why} (fix: ${problem.fix})` : false;
};
const skips = {
  kvm: haveQemu ? false : "qemu-system-x86 or a kernel in /boot is missing",
  docker: dockerUp ? false : "no Docker daemon (run the tests through npm test)",
  runc: await skipFor("runc"),
  crun: await skipFor("crun"),
  nspawn: await skipFor("nspawn"),
  podman: await skipFor("podman"),
};
for (const [runner, why] of Object.entries(skips)) if (why) console.log(`# ${runner} skipped: ${why}`);

describe("runs never change what they run", () => {
  const dir = tempDir();
  write(dir, "r.ts", recipe);
  const out = path.join(dir, "out");
  const watched = ["w", "r", "kw", "kr", "wi.bundle/rootfs", "w.bundle/rootfs"];
  const before_: Record<string, string[]> = {};

  before(() => {
    const r = crecipe(dir, ["r.ts", "trees", "images", "bundles", ...(haveQemu ? ["kw.initrd", "kr.initrd"] : [])]);
    assert.equal(r.status, 0, r.stderr);
    // Built by other targets too: kw and kr come with their initrds.
    for (const tree of watched) if (fs.existsSync(path.join(out, tree))) before_[tree] = snapshot(path.join(out, tree));
  });

  const check = (targets: string[], outputs: [string, string][]) => {
    const r = crecipe(dir, ["r.ts", ...targets]);
    assert.equal(r.status, 0, r.stderr);
    for (const [file, expected] of outputs) assert.equal(fs.readFileSync(path.join(out, file), "utf8"), expected, file);
    for (const tree of watched) {
      if (before_[tree]) assert.deepEqual(snapshot(path.join(out, tree)), before_[tree], `out/${tree} changed`);
    }
  };

  it("run.local", () => check(["local", "localRo"], [["w.runlocal", "writable\n"], ["r.runlocal", "read-only\n"]]));
  it("run.kvm", { skip: skips.kvm }, () => check(["kvm", "kvmRo"], [["kw.runkvm", "writable\n"], ["kr.runkvm", "read-only\n"]]));
  it("run.docker", { skip: skips.docker }, () => check(["docker", "dockerRo"], [["wi.rundocker", "writable\n"], ["ri.rundocker", "read-only\n"]]));
  it("run.runc (an image's bundle, and an fs's)", { skip: skips.runc }, () =>
    check(["runc", "runcRo", "runcFs"], [["wi.runrunc", "writable\n"], ["wi.runrunc-ro", "read-only\n"], ["w.runrunc", "writable\n"]]));
  it("run.crun", { skip: skips.crun }, () => check(["crun", "crunRo"], [["wi.runcrun", "writable\n"], ["wi.runcrun-ro", "read-only\n"]]));
  it("run.nspawn", { skip: skips.nspawn }, () => check(["nspawn", "nspawnRo"], [["wi.runnspawn", "writable\n"], ["wi.runnspawn-ro", "read-only\n"]]));
  it("run.podman", { skip: skips.podman }, () => check(["podman", "podmanRo"], [["wi.runpodman", "writable\n"], ["ri.runpodman", "read-only\n"]]));

  it("run.local and run.runc for an unprivileged user (rootless bundle, overlay in a user namespace)", { skip: !hasTestUser ? NEEDS_TEST_USER : skips.runc }, () => {
    const userDir = tempDir();
    fs.chmodSync(userDir, 0o777);
    write(userDir, "r.ts", recipe);
    const as = (...args: string[]) => crecipeAsTestUser(userDir, ["r.ts", ...args]);
    const built = as("trees", "bundles");
    assert.equal(built.status, 0, built.stderr);
    const userOut = path.join(userDir, "out");
    const trees = ["w", "r", "wi.bundle/rootfs", "w.bundle/rootfs"];
    const seen = Object.fromEntries(trees.map((t) => [t, snapshot(path.join(userOut, t))]));
    const r = as("local", "localRo", "runc", "runcRo", "runcFs");
    assert.equal(r.status, 0, r.stderr);
    const output = (f: string) => fs.readFileSync(path.join(userOut, f), "utf8");
    assert.deepEqual(["w.runlocal", "r.runlocal", "wi.runrunc", "wi.runrunc-ro", "w.runrunc"].map(output), ["writable\n", "read-only\n", "writable\n", "read-only\n", "writable\n"]);
    for (const t of trees) assert.deepEqual(snapshot(path.join(userOut, t)), seen[t], `out/${t} changed`);
  });
});
