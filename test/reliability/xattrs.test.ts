/**
 * Extended attributes survive: a file capability, a user.* attribute and a POSIX ACL on
 * host files reach the list, the layer (pax SCHILY.xattr records), `docker run` (getcap
 * and getfattr in the container) and `umoci unpack`; a change of an attribute alone
 * rebuilds the layer; a file with an ACL keeps its own group bits, not the ACL's mask.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { crecipe, modUrl, tempDir, write, isRoot } from "../helpers.ts";

const tools = spawnSync("sh", ["-c", "command -v setcap && command -v getcap && command -v setfattr && docker info"]).status === 0;
const sh = (command: string) => spawnSync("sh", ["-c", command], { encoding: "utf8", maxBuffer: 1 << 26 });

// An ACL: owner rwx, user 1000 rwx, group r--, mask rwx, other r-- (system.posix_acl_access, version 2).
const ACL = "0x" + [
  "02000000",
  "0100" + "0700" + "ffffffff",
  "0200" + "0700" + "e8030000",
  "0400" + "0400" + "ffffffff",
  "1000" + "0700" + "ffffffff",
  "2000" + "0400" + "ffffffff",
].join("");

describe("extended attributes", { skip: isRoot && tools ? false : "needs root (setcap), setfattr, getcap and a Docker daemon" }, () => {
  const dir = tempDir();
  const data = path.join(dir, "data");
  before(() => {
    fs.mkdirSync(data);
    fs.copyFileSync("/bin/busybox", path.join(data, "pinger"));
    assert.equal(sh(`setcap cap_net_raw+ep ${data}/pinger`).status, 0);
    fs.writeFileSync(path.join(data, "noted"), "with a comment\n");
    assert.equal(sh(`setfattr -n user.comment -v hello ${data}/noted`).status, 0);
    fs.writeFileSync(path.join(data, "shared"), "acl\n");
    fs.chmodSync(path.join(data, "shared"), 0o744);
    const acl = sh(`setfattr -n system.posix_acl_access -v ${ACL} ${data}/shared`);
    assert.equal(acl.status, 0, acl.stderr);
    assert.equal((fs.statSync(path.join(data, "shared")).mode & 0o777).toString(8), "774", "on the host, stat's group bits are the mask");
    write(dir, "r.ts", `
import { fs, image, layer, files } from ${JSON.stringify(modUrl)};
export const tools = fs("tools", async (root) => {
  await root.copyIn(["/bin/busybox", "/usr/sbin/getcap", "/usr/bin/getfattr"], "/bin/");
  await root.addSharedLibraries();
});
export const app = fs("app", async (root) => {
  await root.from(tools);
  await root.copyIn(${JSON.stringify(data)}, "/data");
});
export const appFiles = files(app);
export const appImage = image("xattrs", [layer(tools), layer(app, tools)], { tag: "crecipe-test-xattrs:latest" });
`);
    const r = crecipe(dir, ["r.ts", "appImage", "appFiles"]);
    assert.equal(r.status, 0, r.stderr);
  });

  it("are in the list and in the layer as pax records; a file's group bits are its own", () => {
    const list = fs.readFileSync(path.join(dir, "out/app.files"), "utf8");
    assert.match(list, /^data\/pinger file 0755 .* security\.capability=0[0-9a-f]+$/m);
    assert.match(list, /^data\/noted file 0644 .* user\.comment=68656c6c6f$/m);
    assert.match(list, /^data\/shared file 0744 .* system\.posix_acl_access=02000000/m);
    const listing = sh(`tar --xattrs --xattrs-include='*' --numeric-owner -tvvf ${dir}/out/app.layer`).stdout;
    assert.match(listing, /^-rwxr--r--\* 0\/0 .* data\/shared\n  x: \d+ system.posix_acl_access/m, "the file's group r--, not the mask's rwx");
  });

  it("survive docker run and umoci unpack", () => {
    const image = path.join(dir, "out/xattrs.image");
    assert.equal(sh(`tar -cf - -C ${image} . | docker load`).status, 0);
    const run = (command: string) => sh(`docker run --rm --network=none crecipe-test-xattrs:latest ${command}`);
    assert.match(run("/bin/getcap /data/pinger").stdout, /cap_net_raw[=+]ep/);
    assert.match(run("/bin/getfattr -n user.comment /data/noted").stdout, /user\.comment="hello"/);
    assert.match(run("/bin/getfattr -n system.posix_acl_access -e hex /data/shared").stdout, /system\.posix_acl_access=0x02000000/);
    sh("docker rmi -f crecipe-test-xattrs:latest");
    const bundle = path.join(dir, "bundle");
    const unpack = sh(`umoci unpack --image ${image}:latest ${bundle}`);
    assert.equal(unpack.status, 0, unpack.stderr);
    assert.match(sh(`getcap ${bundle}/rootfs/data/pinger`).stdout, /cap_net_raw[=+]ep/);
    assert.match(sh(`getfattr -n user.comment ${bundle}/rootfs/data/noted`).stdout, /hello/);
  });

  it("a change of an attribute alone rebuilds the layer", () => {
    const before = fs.readFileSync(path.join(dir, "out/app.layer"));
    assert.equal(sh(`setfattr -n user.comment -v changed ${data}/noted`).status, 0);
    const r = crecipe(dir, ["r.ts", "appImage"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /crecipe +app\.layer/);
    assert.ok(!fs.readFileSync(path.join(dir, "out/app.layer")).equals(before));
    assert.match(sh(`tar --xattrs --xattrs-include='*' -xOf ${dir}/out/app.layer data/noted >/dev/null; tar --xattrs -tvvf ${dir}/out/app.layer`).stdout, /data\/noted/);
  });
});
