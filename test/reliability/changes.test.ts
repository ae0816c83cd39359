/**
 * Every kind of change between two trees makes a diff layer that Docker loads and runs,
 * and that umoci unpacks to exactly the new tree: a type change either way (directory,
 * file, symlink), a new hard link to a file the layer does not carry, a hard link group
 * split, a directory emptied or replaced, a deletion next to a name that sorts before
 * ".wh.". Compared entry by entry (type, mode, owner, size, content, link target).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { parseList } from "../../lib/formats/filelist.ts";
import { scanTree } from "../../lib/tree/scan.ts";
import { crecipe, modUrl, tempDir, write, isRoot } from "../helpers.ts";

const dockerUp = spawnSync("docker", ["info"]).status === 0;

/** base builder body, current builder body (after from(base)). Everything under /t. */
const CASES: Record<string, [string, string]> = {
  dirToFile: [`await root.write("t/x/a", "a"); await root.write("t/x/b", "b");`, `await root.remove("t/x", { recursive: true }); await root.write("t/x", "now a file");`],
  dirToSymlink: [`await root.write("t/x/a", "a"); await root.write("t/y/c", "c");`, `await root.remove("t/x", { recursive: true }); await root.symlink("y", "t/x");`],
  fileToDir: [`await root.write("t/x", "a file");`, `await root.remove("t/x"); await root.write("t/x/inside", "i");`],
  symlinkToDir: [`await root.write("t/y/c", "c"); await root.symlink("y", "t/x");`, `await root.remove("t/x"); await root.write("t/x/inside", "i");`],
  fileToSymlink: [`await root.write("t/x", "a file"); await root.write("t/y", "y");`, `await root.symlink("y", "t/x");`],
  symlinkToFile: [`await root.write("t/y", "y"); await root.symlink("y", "t/x");`, `await root.write("t/x", "now a file");`],
  newLinkToOld: [`await root.write("t/a", "shared");`, `nfs.linkSync(root.path("t/a"), root.path("t/b"));`],
  newLinkToOldSortsFirst: [`await root.write("t/z", "shared");`, `nfs.linkSync(root.path("t/z"), root.path("t/a"));`],
  groupSplit: [`await root.write("t/a", "shared"); nfs.linkSync(root.path("t/a"), root.path("t/b")); nfs.linkSync(root.path("t/a"), root.path("t/c"));`, `await root.write("t/a", "changed");`],
  emptied: [`await root.write("t/d/a", "a"); await root.write("t/d/b", "b");`, `await root.remove("t/d/a"); await root.remove("t/d/b");`],
  replaced: [`await root.write("t/d/a", "a"); await root.write("t/d/b", "b");`, `await root.remove("t/d", { recursive: true }); await root.write("t/d/c", "c");`],
  whiteoutOrder: [`await root.write("t/old", "o"); await root.mkdir("t/-sib");`, `await root.remove("t/old"); await root.write("t/-sib/n", "n");`],
  nestedGone: [`await root.write("t/p/q/r/s", "s"); await root.write("t/p/keep", "k");`, `await root.remove("t/p/q", { recursive: true });`],
};

describe("diff layers of every kind of change", { skip: isRoot && dockerUp ? false : "needs root (extracting owners) and a Docker daemon" }, () => {
  const dir = tempDir();
  before(() => {
    const lines = [
      `import { files, fs, image, layer } from ${JSON.stringify(modUrl)};`,
      `import * as nfs from "node:fs";`,
      `const shell = async (root: any) => { await root.copyIn("/bin/busybox", "/bin/"); };`,
    ];
    for (const [name, [base, current]] of Object.entries(CASES)) {
      lines.push(`const ${name}Base = fs("${name}-base", async (root) => { await shell(root); ${base} });`);
      lines.push(`const ${name} = fs("${name}", async (root) => { await root.from(${name}Base); ${current} });`);
      lines.push(`export const ${name}Image = image("${name}", [layer(${name}Base), layer(${name}, ${name}Base)], { tag: "crecipe-test-${name.toLowerCase()}:latest" });`);
      lines.push(`export const ${name}Files = files(${name});`);
    }
    write(dir, "r.ts", lines.join("\n") + "\n");
    const r = crecipe(dir, ["r.ts", ...Object.keys(CASES).flatMap((n) => [`${n}Image`, `${n}Files`])]);
    assert.equal(r.status, 0, r.stderr);
  });

  /** The entries under t/ of a tree on disk, owners from the disk. */
  const unpacked = (root: string) => scanTree(path.join(root, "t"), undefined, { diskOwners: true });
  const expected = (name: string) => parseList(fs.readFileSync(path.join(dir, `out/${name}.files`), "utf8")).entries
    .filter((e) => e.path.toString("latin1").startsWith("t/"))
    .map((e) => (e.type === "hardlink" ? { ...e, path: e.path.subarray(2), linkTarget: e.linkTarget!.subarray(2) } : { ...e, path: e.path.subarray(2) }));
  const sh = (command: string) => spawnSync("sh", ["-c", command], { encoding: "utf8", maxBuffer: 1 << 26 });

  it("in a layer, a directory's whiteouts come before its other entries (image-spec layer.md)", () => {
    const names = sh(`tar -tf ${path.join(dir, "out/whiteoutOrder.layer")}`).stdout.split("\n").filter(Boolean);
    assert.deepEqual(names, ["t/.wh.old", "t/-sib/n"]); // by path alone, t/-sib/n ("-" < ".") would come first
  });

  for (const name of Object.keys(CASES)) {
    it(`${name}: docker loads and exports it as the tree; umoci unpacks it as the tree`, () => {
      const image = path.join(dir, `out/${name}.image`);
      const tag = `crecipe-test-${name.toLowerCase()}:latest`;
      const load = sh(`tar -cf - -C ${image} . | docker load`);
      assert.equal(load.status, 0, `docker load: ${load.stderr}`);
      const exported = path.join(dir, `docker-${name}`);
      fs.mkdirSync(exported);
      const run = sh(`id=$(docker create ${tag}) && docker export $id | tar -xpf - --numeric-owner -C ${exported} && docker rm $id >/dev/null`);
      assert.equal(run.status, 0, run.stderr);
      const ran = sh(`docker run --rm --network=none ${tag} /bin/busybox ls -la /t`);
      assert.equal(ran.status, 0, `docker run: ${ran.stderr}`);
      assert.deepEqual(unpacked(exported), expected(name), "docker's tree");
      const bundle = path.join(dir, `umoci-${name}`);
      const unpack = sh(`umoci unpack --image ${image}:latest ${bundle}`);
      assert.equal(unpack.status, 0, unpack.stderr);
      assert.deepEqual(unpacked(path.join(bundle, "rootfs")), expected(name), "umoci's tree");
      sh(`docker rmi -f ${tag}`);
    });
  }
});
