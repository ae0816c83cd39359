/**
 * Nothing widened: a host file copied in setuid or setgid with an owner other than root
 * is an error (its owner is not carried, so it would become setuid root), unless the
 * recipe sets its owner or clears the bit. A sparse file is packed dense, with a warning
 * that says how large it is and how little of it is on disk.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { crecipe, modUrl, tempDir, write, isRoot } from "../helpers.ts";


describe("setuid and setgid files from the host", { skip: isRoot ? false : "making a host file owned by another user needs root" }, () => {
  const dir = tempDir();
  const suid = path.join(dir, "suid-tool");
  const sgid = path.join(dir, "sgid-tool");
  fs.writeFileSync(suid, "#!/bin/sh\n");
  fs.chownSync(suid, 1000, 1000);
  fs.chmodSync(suid, 0o4755);
  fs.writeFileSync(sgid, "#!/bin/sh\n");
  fs.chownSync(sgid, 0, 50);
  fs.chmodSync(sgid, 0o2755);
  write(dir, "r.ts", `
import { fs, layer } from ${JSON.stringify(modUrl)};
export const plain = fs("plain", async (root) => { await root.copyIn(${JSON.stringify(suid)}, "/bin/"); });
export const group = fs("group", async (root) => { await root.copyIn(${JSON.stringify(sgid)}, "/bin/"); });
export const owned = fs("owned", async (root) => { await root.copyIn(${JSON.stringify(suid)}, "/bin/"); await root.chown("/bin/suid-tool", 1000, 1000); });
export const cleared = fs("cleared", async (root) => { await root.copyIn(${JSON.stringify(suid)}, "/bin/"); await root.chmod("/bin/suid-tool", 0o755); });
export const ownedLayer = layer(owned);
export const clearedLayer = layer(cleared);
`);

  it("is an error naming the file, its host owner and the two fixes", () => {
    const r = crecipe(dir, ["r.ts", "plain"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /FAILED plain: .*\/bin\/suid-tool was copied from .*suid-tool, which is setuid \(its owner on the host is uid 1000\)/);
    assert.match(r.stderr, /fix: +keep its owner with root\.chown\("\/bin\/suid-tool", 1000, 1000\), or clear the bit with root\.chmod\("\/bin\/suid-tool", 0o755\)/);
    const g = crecipe(dir, ["r.ts", "group"]);
    assert.equal(g.status, 1);
    assert.match(g.stderr, /setgid \(its group on the host is gid 50\)/);
  });

  it("keeps an owner the recipe set, or a bit the recipe cleared", () => {
    const r = crecipe(dir, ["r.ts", "ownedLayer", "clearedLayer"]);
    assert.equal(r.status, 0, r.stderr);
    const listing = (layer: string) => spawnSync("tar", ["-tvf", path.join(dir, "out", layer), "--numeric-owner"], { encoding: "utf8" }).stdout;
    assert.match(listing("owned.layer"), /^-rwsr-xr-x 1000\/1000 .* bin\/suid-tool$/m);
    assert.match(listing("cleared.layer"), /^-rwxr-xr-x 0\/0 .* bin\/suid-tool$/m);
  });
});

describe("sparse files", () => {
  it("are packed dense, with a warning giving their length and what is on disk", () => {
    const dir = tempDir();
    write(dir, "r.ts", `
import { fs, layer } from ${JSON.stringify(modUrl)};
import * as nfs from "node:fs";
export const holes = fs("holes", async (root) => {
  const fd = nfs.openSync(root.path("holes.img"), "w");
  nfs.writeSync(fd, "end", 64 << 20);
  nfs.closeSync(fd);
});
export default layer(holes);
`);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: holes\.layer: holes\.img is sparse \(64 MiB long, 0\.0 MiB on disk\)/);
    assert.ok(fs.statSync(path.join(dir, "out/holes.layer")).size > 64 << 20);
  });
});

describe("hard links copied in one call", () => {
  it("stay one file with two names in the tree and in the layer, as cp -a keeps them", () => {
    const dir = tempDir();
    const a = path.join(dir, "src", "a");
    const b = path.join(dir, "src", "b");
    fs.mkdirSync(path.dirname(a));
    fs.writeFileSync(a, "one inode\n");
    fs.linkSync(a, b);
    write(dir, "r.ts", `
import { fs, layer } from ${JSON.stringify(modUrl)};
export const pair = fs("pair", async (root) => { await root.copyIn([${JSON.stringify(a)}, ${JSON.stringify(b)}], "/d/"); });
export const apart = fs("apart", async (root) => { await root.copyIn(${JSON.stringify(a)}, "/d/"); await root.copyIn(${JSON.stringify(b)}, "/d/"); });
export default [layer(pair), layer(apart)];
`);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    const ino = (p: string) => fs.statSync(path.join(dir, "out", p)).ino;
    assert.equal(ino("pair/d/a"), ino("pair/d/b"), "one inode in the tree");
    const listing = spawnSync("tar", ["-tvf", path.join(dir, "out/pair.layer")], { encoding: "utf8" }).stdout;
    assert.match(listing, /^h.* d\/b link to d\/a$/m, listing);
    // Two calls are two copies, as two cp runs would make.
    assert.notEqual(ino("apart/d/a"), ino("apart/d/b"));
  });
});
