/**
 * root.runWith: a build step with a tool tree mounted read-only (dappdeps), in a tree that
 * has no shell. Afterwards the mount point is an empty directory, the layer carries no
 * tool, and a write left under the mount point is an error naming the paths. Rootless
 * too, in a snapshot too.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { crecipe, modUrl, tempDir, write, hasTestUser, NEEDS_TEST_USER, crecipeAsTestUser } from "../helpers.ts";

const recipe = `
import { fs, layer, list } from ${JSON.stringify(modUrl)};
export const tools = fs("tools", async (root) => {
  await root.copyIn("/bin/busybox", "/bin/");
  await root.symlink("busybox", "/bin/sh");
});
// A snapshot of tools: a tool tree of two layers (mounted as a read-only overlay).
export const moreTools = fs("moretools", async (root) => {
  await root.from(tools);
  await root.write("/share/greeting", "from the tools\\n");
});
const step = "mkdir -p /etc && echo built > /etc/built && busybox cat /.tools/share/greeting > /etc/greeting; ls /.tools/bin > /etc/tools-seen";
export const app = fs("app", async (root) => {
  await root.write("/etc/motd", "no shell here\\n");
  await root.runWith(tools, "/.tools", ["sh", "-c", step], { env: { PATH: "/.tools/bin" } });
});
export const snap = fs("snap", async (root) => {
  await root.from(app);
  await root.runWith(moreTools, "/.tools", ["sh", "-c", step + "; rm /etc/motd"], { env: { PATH: "/.tools/bin" } });
});
export const appLayer = layer(app);
export const snapLayer = layer(snap, app);
export const leak = fs("leak", async (root) => {
  await root.runWith(tools, "/opt/tools", ["sh", "-c", "touch /opt/tools/x || echo refused; umount -l /opt/tools && echo leak > /opt/tools/leaked && mkdir /opt/tools/d"], { env: { PATH: "/opt/tools/bin" } });
});
export const full = fs("full", async (root) => {
  await root.write("/.tools/old", "in the way\\n");
  await root.runWith(tools, "/.tools", ["true"]);
});
`;

const tarNames = (file: string) => spawnSync("tar", ["-tf", file], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);

describe("root.runWith", () => {
  const dir = tempDir();
  write(dir, "r.ts", recipe);
  const out = path.join(dir, "out");

  it("runs a step with the tools in a tree without a shell; the mount point is left empty", () => {
    const r = crecipe(dir, ["r.ts", "appLayer"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(out, "app/etc/built"), "utf8"), "built\n");
    assert.equal(fs.readFileSync(path.join(out, "app/etc/tools-seen"), "utf8"), "busybox\nsh\n", "the tools were there during the step");
    assert.deepEqual(fs.readdirSync(path.join(out, "app/.tools")), []);
    assert.deepEqual(fs.readdirSync(path.join(out, "app")).sort(), [".tools", "etc"]);
  });

  it("the layer carries the empty mount point and none of the tools", () => {
    const names = tarNames(path.join(out, "app.layer"));
    assert.deepEqual(names, [".tools/", "etc/", "etc/built", "etc/greeting", "etc/motd", "etc/tools-seen"]);
    assert.ok(!names.some((n) => n.includes("busybox")));
  });

  it("a tool tree of several layers, mounted into a snapshot", () => {
    const r = crecipe(dir, ["r.ts", "snapLayer"]);
    assert.equal(r.status, 0, r.stderr);
    const names = tarNames(path.join(out, "snap.layer"));
    assert.ok(names.includes("etc/greeting") && names.includes("etc/.wh.motd"), names.join(" "));
    assert.ok(!names.some((n) => n.startsWith(".tools/") && n !== ".tools/"), names.join(" "));
    assert.equal(fs.readFileSync(path.join(out, "snap/etc/greeting"), "utf8"), "from the tools\n");
  });

  it("the tools are read-only, and a write left under the mount point is an error naming the paths", () => {
    const r = crecipe(dir, ["r.ts", "leak"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /FAILED leak: .*runWith: sh wrote under the tool mount point \/opt\/tools: \/opt\/tools\/d, \/opt\/tools\/leaked\n/);
    assert.match(r.stderr, /fix: +write outside \/opt\/tools/);
    assert.match(fs.readFileSync(path.join(out, ".crecipe/log/leak.log"), "utf8"), /refused/, "touch failed: the mount is read-only");
    assert.equal(fs.existsSync(path.join(out, "leak")), false);
  });

  it("a mount point that is not empty is refused before anything runs", () => {
    const r = crecipe(dir, ["r.ts", "full"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /the mount point \/.tools is not empty \(\/\.tools\/old\)/);
  });

  it("works for an unprivileged user", { skip: hasTestUser ? false : NEEDS_TEST_USER }, () => {
    const userDir = tempDir();
    fs.chmodSync(userDir, 0o777);
    write(userDir, "r.ts", recipe);
    const r = crecipeAsTestUser(userDir, ["r.ts", "appLayer", "snapLayer"]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(tarNames(path.join(userDir, "out/app.layer")), [".tools/", "etc/", "etc/built", "etc/greeting", "etc/motd", "etc/tools-seen"]);
  });
});
