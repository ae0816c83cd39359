/**
 * Snapshot filesystems: `root.from(base)` copies nothing, keeps the base byte-identical
 * whatever the builder does, and gives exactly the lists, layers and initrds that a full
 * copy (`from(base, { snapshot: false })`, the old way) gives, for every kind of change.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { scanTree } from "../../lib/tree/scan.ts";
import { crecipe, modUrl, tempDir, write, isRoot, hasTestUser, crecipeAsTestUser } from "../helpers.ts";

/** Each change a builder can make to a tree it started from the base. */
const CHANGES: Record<string, string> = {
  newTop: `await root.write("new", "n");`,
  newInBaseDir: `await root.write("etc/new", "n");`,
  overwrite: `await root.write("etc/conf", "changed");`,
  overwriteSame: `await root.write("etc/conf", "conf");`,
  chmodFile: `await root.chmod("etc/conf", 0o600);`,
  chmodDir: `await root.chmod("etc", 0o700);`,
  removeFile: `await root.remove("etc/gone");`,
  removeDir: `await root.remove("dir", { recursive: true });`,
  removeAndRemake: `await root.remove("dir", { recursive: true }); await root.write("dir/c", "c");`,
  emptyDir: `await root.remove("dir/a"); await root.remove("dir/b"); await root.remove("dir/sub", { recursive: true });`,
  fileToDir: `await root.remove("etc/conf"); await root.write("etc/conf/inside", "i");`,
  dirToFile: `await root.remove("dir", { recursive: true }); await root.write("dir", "now a file");`,
  dirToSymlink: `await root.remove("dir", { recursive: true }); await root.symlink("etc", "dir");`,
  symlinkToFile: `await root.write("link", "was a link");`,
  chownOnly: `await root.chown("etc/conf", 1000, 1000);`,
  hardLinkFirst: `await root.write("hl/a", "first member rewritten");`,
  hardLinkSecond: `await root.write("hl/b", "second member rewritten");`,
  hardLinkRemoved: `await root.remove("hl/a");`,
  rawAppend: `nfs.appendFileSync(root.path("etc/conf"), " more");`,
  rawDelete: `nfs.rmSync(root.path("etc/gone"));`,
  rawDeleteDir: `nfs.rmSync(root.path("dir"), { recursive: true });`,
  rawRename: `nfs.renameSync(root.path("etc/gone"), root.path("etc/moved"));`,
  rawSed: `await $\`sed -i s/conf/CONF/ \${root.path("etc/conf")}\`;`,
  rawRmMkdir: `const p = root.path("dir"); nfs.rmSync(p, { recursive: true }); nfs.mkdirSync(p); nfs.writeFileSync(p + "/new", "n");`,
  rawRenameDir: `nfs.renameSync(root.path("dir"), root.path("moved"));`,
  rawDeleteInDir: `nfs.rmSync(root.path("dir") + "/sub", { recursive: true }); nfs.writeFileSync(root.path("dir") + "/a", "A");`,
  writeThenRawDelete: `await root.write("etc/conf", "new"); nfs.rmSync(root.path("etc/conf"));`,
  rawAppendViaLink: `root.path("etc/gone"); nfs.appendFileSync(root.path("link", { followLast: true }), " more");`,
  rawAppendHardLink: `nfs.appendFileSync(root.path("hl") + "/a", " more");`,
  rawRemoveLink: `nfs.rmSync(root.path("link", { followLast: false }));`,
  copyInThenRawDelete: `await root.copyIn(here("host.txt"), "/etc/conf"); nfs.rmSync(root.path("etc/conf"));`,
  rawDeleteThroughLink: `nfs.rmSync(root.path("dir/a")); if (root.exists("dirlink/a")) await root.write("wrong", "exists() saw the deleted file");`,
  removeOwnedAndRemake: `await root.remove("etc/gone"); await root.write("etc/gone", "new");`,
  rawDeleteThenPathElsewhere: `const a = root.path("dir/a"); nfs.rmSync(a); nfs.appendFileSync(root.path("etc/conf"), "x"); nfs.writeFileSync(root.path("dir/sub") + "/d", "d");`,
  copyInHost: `await root.copyIn(here("host.txt"), "/etc/");`,
  copyInOverDir: `await root.copyIn(here("hostdir"), "/dir");`,
  mknodOverFile: `await root.mknod("etc/conf", "char", 1, 3, 0o666);`,
  deepNew: `await root.mkdir("dir/sub/deeper/still"); await root.write("dir/sub/deeper/still/f", "f");`,
  runSed: `await root.run(["/bin/busybox", "sed", "-i", "s/conf/CONF/", "/etc/conf"]);`,
  runRemake: `await root.run(["/bin/busybox", "sh", "-c", "busybox rm -rf /dir && busybox mkdir /dir && echo n > /dir/new"]);`,
  runMoveDir: `await root.run(["/bin/busybox", "mv", "/dir", "/moved"]);`,
  runMixed: `await root.run(["/bin/busybox", "sh", "-c", "busybox chmod 700 /etc && busybox rm /etc/gone && busybox ln -s conf /etc/alias && echo more >> /dir/sub/c"]);`,
  runThenWrite: `await root.run(["/bin/busybox", "rm", "-r", "/dir/sub"]); await root.write("dir/sub/again", "a");`,
  many: `await root.write("etc/conf", "x"); await root.remove("etc/gone"); await root.chmod("dir/sub", 0o711); await root.symlink("../etc/conf", "dir/l");`,
};

/** Two-step chains: a snapshot of CHANGES[first]'s snapshot, then `body`. */
const CHAINS: Record<string, [string, string]> = {
  chainRemakeDir: ["removeDir", `await root.write("dir/new", "n");`],
  chainRunRemakeDir: ["removeDir", `await root.run(["/bin/busybox", "sh", "-c", "busybox mkdir /dir && echo n > /dir/new"]);`],
  chainMkdirOnly: ["removeDir", `await root.mkdir("dir");`],
  chainFileBackToDir: ["dirToFile", `await root.remove("dir"); await root.write("dir/new", "n");`],
  chainSymlinkBackToDir: ["dirToSymlink", `await root.remove("dir"); await root.mkdir("dir/sub");`],
};

function recipe(): string {
  const lines = [
    `import { $, fs, here, layer, list, files, initrd } from ${JSON.stringify(modUrl)};`,
    `import * as nfs from "node:fs";`,
    `export const base = fs("base", async (root) => {`,
    `  await root.copyIn("/bin/busybox", "/bin/");`,
    `  await root.write("etc/conf", "conf");`,
    `  await root.write("etc/gone", "gone");`,
    `  await root.write("dir/a", "a");`,
    `  await root.write("dir/b", "b");`,
    `  await root.write("dir/sub/c", "c");`,
    `  await root.write("dir-x", "sorts before dir/");`,
    `  await root.write("hl/a", "linked");`,
    `  nfs.linkSync(root.path("hl/a"), root.path("hl/b"));`,
    `  await root.write("hl2/x", "grouped across the top level");`,
    `  nfs.linkSync(root.path("hl2/x"), root.path("hl2-top"));`, // a full copy keeps the group whole
    `  await root.symlink("etc/conf", "link");`,
    `  await root.symlink("dir", "dirlink");`,
    `  await root.mkdir("empty");`,
    `  await root.write("setuid", "s", 0o4755);`,
    `  await root.chown("etc/gone", 7, 8);`,
    `});`,
    `export const all: any[] = [];`,
  ];
  for (const [name, body] of Object.entries(CHANGES)) {
    for (const [prefix, snapshot] of [["s", ""], ["c", ", { snapshot: false }"]]) {
      lines.push(`export const ${prefix}_${name} = fs("${prefix}_${name}", async (root) => {`);
      lines.push(`  await root.from(base${snapshot});`);
      lines.push(`  ${body}`);
      lines.push(`});`);
      lines.push(`all.push(layer(${prefix}_${name}, base));`);
    }
    lines.push(`all.push(initrd(s_${name}), initrd(c_${name}));`);
  }
  // A snapshot of a snapshot: the chain is two layers deep.
  lines.push(`export const s_chain = fs("s_chain", async (root) => { await root.from(s_many); await root.remove("etc/new-nothing-here").catch(() => {}); await root.write("etc/conf", "chain"); await root.remove("dir/a"); });`);
  lines.push(`export const c_chain = fs("c_chain", async (root) => { await root.from(c_many, { snapshot: false }); await root.write("etc/conf", "chain"); await root.remove("dir/a"); });`);
  lines.push(`export const chainLayers = [list(s_chain, base), list(c_chain, base), files(s_chain), files(c_chain)];`);
  lines.push(`export const pathAfterRemove = files(fs("s_pathAfterRemove", async (root) => { await root.from(base); await root.remove("dir", { recursive: true }); root.path("dir/a"); }));`);
  // Chains whose second step brings back a path the first step deleted or made a file:
  // the middle layer's whiteout (or file) must still hide the base's children of it.
  for (const [name, [first, body]] of Object.entries(CHAINS)) {
    lines.push(`export const s_${name} = fs("s_${name}", async (root) => { await root.from(s_${first}); ${body} });`);
    lines.push(`export const c_${name} = fs("c_${name}", async (root) => { await root.from(c_${first}, { snapshot: false }); ${body} });`);
    lines.push(`chainLayers.push(files(s_${name}), files(c_${name}), initrd(s_${name}), initrd(c_${name}), list(s_${name}, base), list(c_${name}, base));`);
  }
  lines.push(`export default all;`);
  return lines.join("\n") + "\n";
}

describe("snapshot filesystems", () => {
  const dir = tempDir();
  const out = path.join(dir, "out");
  let baseBefore: ReturnType<typeof scanTree>;

  before(() => {
    write(dir, "r.ts", recipe());
    write(dir, "host.txt", "from the host\n");
    write(dir, "hostdir/x", "x\n");
    const first = crecipe(dir, ["r.ts", "base"]);
    assert.equal(first.status, 0, first.stderr);
    baseBefore = scanTree(path.join(out, "base"), undefined, { diskOwners: true });
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    const chain = crecipe(dir, ["r.ts", "chainLayers"]);
    assert.equal(chain.status, 0, chain.stderr);
  });

  it("a snapshot's tree holds only what it changed", () => {
    assert.deepEqual(fs.readdirSync(path.join(out, "s_newTop")), ["new"]);
    assert.deepEqual(fs.readdirSync(path.join(out, "s_chmodFile/etc")), ["conf"]);
    assert.deepEqual(fs.readdirSync(path.join(out, "s_chmodDir/etc")), [], "a chmod brings up the directory, not what it holds");
    assert.ok(fs.readdirSync(path.join(out, "c_newTop")).length > 5, "the copy holds everything");
  });

  it("the base stays byte-identical, whatever the builders did", () => {
    assert.deepEqual(scanTree(path.join(out, "base"), undefined, { diskOwners: true }), baseBefore);
    assert.equal(fs.readFileSync(path.join(out, "base/etc/conf"), "utf8"), "conf");
    assert.equal(fs.statSync(path.join(out, "base/etc/conf")).mode & 0o777, 0o644);
  });

  for (const name of Object.keys(CHANGES)) {
    it(`${name}: the snapshot's list, layer and initrd equal the full copy's`, () => {
      for (const suffix of [".list", ".layer", ".initrd"]) {
        const snap = fs.readFileSync(path.join(out, `s_${name}${suffix}`));
        const copy = fs.readFileSync(path.join(out, `c_${name}${suffix}`));
        assert.ok(snap.equals(copy), `s_${name}${suffix} differs from c_${name}${suffix}:\n${snap.toString("latin1").slice(0, 2000)}\n---\n${copy.toString("latin1").slice(0, 2000)}`);
      }
    });
  }

  it("root.path() under a removed directory brings nothing of the base back", () => {
    const r = crecipe(dir, ["r.ts", "pathAfterRemove"]);
    assert.equal(r.status, 0, r.stderr);
    const listed = fs.readFileSync(path.join(out, "s_pathAfterRemove.files"), "latin1");
    assert.doesNotMatch(listed, /^dir\/a /m);
    assert.doesNotMatch(listed, /^dir\/b /m);
  });

  it("a path removed and made again does not keep the removed one's recorded owner", () => {
    for (const kind of ["s", "c"]) {
      const line = fs.readFileSync(path.join(out, `${kind}_removeOwnedAndRemake.list`), "latin1").split("\n").find((l) => l.startsWith("etc/gone "));
      assert.match(line ?? "", /^etc\/gone file 0644 0:0 /, `${kind}: ${line}`);
    }
  });

  it("a snapshot of a snapshot lists like a copy of a copy", () => {
    for (const suffix of [".list", ".files"]) {
      assert.equal(fs.readFileSync(path.join(out, `s_chain${suffix}`), "latin1"), fs.readFileSync(path.join(out, `c_chain${suffix}`), "latin1"));
    }
  });

  for (const name of Object.keys(CHAINS)) {
    it(`${name}: a path deleted in the middle and made again shows none of the base's children`, () => {
      for (const suffix of [".files", ".initrd", ".list"]) {
        const snap = fs.readFileSync(path.join(out, `s_${name}${suffix}`));
        const copy = fs.readFileSync(path.join(out, `c_${name}${suffix}`));
        assert.ok(snap.equals(copy), `s_${name}${suffix} differs from c_${name}${suffix}:\n${snap.toString("latin1").slice(0, 1500)}\n---\n${copy.toString("latin1").slice(0, 1500)}`);
      }
      assert.doesNotMatch(fs.readFileSync(path.join(out, `s_${name}.files`), "latin1"), /^dir\/a /m);
    });
  }

  it("a deletion is a whiteout in the snapshot's tree and in its layer", () => {
    const st = fs.lstatSync(path.join(out, "s_removeFile/etc/gone"));
    assert.ok(st.isCharacterDevice() && st.rdev === 0, "an overlayfs whiteout");
    const names = spawnSync("tar", ["-tf", path.join(out, "s_removeFile.layer")], { encoding: "utf8" }).stdout.split("\n");
    assert.ok(names.includes("etc/.wh.gone"), names.join(" "));
  });

  it("run.local sees the merged tree: the base, the changes, not the deletions", () => {
    write(dir, "run.ts", `
import { run } from ${JSON.stringify(modUrl)};
import { s_many } from "./r.ts";
export default run.local(s_many, { command: ["/bin/busybox", "sh", "-c", "busybox ls /etc /dir; busybox cat /etc/conf; busybox stat -c %a /dir/sub"] });
`);
    const r = crecipe(dir, ["run.ts"]);
    assert.equal(r.status, 0, r.stderr);
    const seen = fs.readFileSync(path.join(out, "s_many.runlocal"), "utf8");
    assert.match(seen, /\/dir:\na\nb\nl\nsub\n/);
    assert.match(seen, /\/etc:\nconf\n/, "etc/gone is deleted");
    assert.ok(seen.endsWith("x711\n"), seen);
  });

  it("an unprivileged user makes the same snapshot layers (whiteouts without root)", { skip: isRoot && hasTestUser ? false : "needs root and the crecipe-test user" }, () => {
    const userDir = tempDir();
    fs.chmodSync(userDir, 0o777);
    write(userDir, "r.ts", recipe());
    fs.cpSync(path.join(dir, "host.txt"), path.join(userDir, "host.txt"));
    fs.cpSync(path.join(dir, "hostdir"), path.join(userDir, "hostdir"), { recursive: true });
    const targets = ["s_removeFile.layer", "s_removeAndRemake.layer", "s_rawDeleteDir.layer", "s_many.layer", "s_runSed.layer", "s_runRemake.layer", "s_runMixed.layer"];
    const r = crecipeAsTestUser(userDir, ["-q", "r.ts", ...targets]);
    assert.equal(r.status, 0, r.stderr);
    for (const t of targets) assert.ok(fs.readFileSync(path.join(userDir, "out", t)).equals(fs.readFileSync(path.join(out, t))), `${t} differs`);
  });
});

describe("hand edits inside trees", () => {
  const recipeText = `
import { fs, layer } from ${JSON.stringify(modUrl)};
export const base = fs("base", async (root) => { await root.write("etc/conf", "conf"); await root.write("top", "t"); });
export const app = fs("app", async (root) => { await root.from(base); await root.write("etc/app", "app"); });
export default [layer(base), layer(app, base)];
`;

  it("a change at a tree's top level is found by a no-op and rebuilt", () => {
    const dir = tempDir();
    write(dir, "r.ts", recipeText);
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    write(dir, "out/base/stray", "x");
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /out\/base was modified outside crecipe; rebuilding it \(stray was added\)/);
    assert.ok(!fs.existsSync(path.join(dir, "out/base/stray")));
  });

  it("an edit deep in a tree is found by --check, and by a layer that reads it", () => {
    const dir = tempDir();
    write(dir, "r.ts", recipeText);
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    fs.appendFileSync(path.join(dir, "out/app/etc/app"), " edited");
    // A no-op does not look inside trees (that is what makes it cheap) …
    assert.match(crecipe(dir, ["r.ts"]).stderr, /0 built/);
    // … but a layer that packs the file refuses a file that is not what was built …
    fs.rmSync(path.join(dir, "out/.crecipe/state/app.layer.json"));
    const packed = crecipe(dir, ["r.ts"]);
    assert.equal(packed.status, 1);
    assert.match(packed.stderr, /FAILED app\.layer: etc\/app changed after app was built/);
    assert.match(packed.stderr, /fix: .*--check/);
    // … and --check finds it and rebuilds the tree.
    const checked = crecipe(dir, ["--check", "r.ts"]);
    assert.equal(checked.status, 0, checked.stderr);
    assert.match(checked.stderr, /out\/app was modified outside crecipe; rebuilding it \(etc\/app was changed\)/);
    assert.equal(fs.readFileSync(path.join(dir, "out/app/etc/app"), "utf8"), "app");
  });

  it("a tree whose manifest was deleted is rebuilt by a no-op, not left for a layer to fail on", () => {
    const dir = tempDir();
    write(dir, "r.ts", recipeText);
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    const trees = path.join(dir, "out/.crecipe/tree");
    for (const f of fs.readdirSync(trees)) if (f.startsWith("app.")) fs.rmSync(path.join(trees, f));
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /out\/app was modified outside crecipe; rebuilding it \(its manifest .* is missing\)/);
    fs.rmSync(path.join(dir, "out/.crecipe/state/app.layer.json"));
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
  });

  it("a file touched deep in a tree, its content the same: the layer refuses it until --check, which takes its new stat", () => {
    const dir = tempDir();
    write(dir, "r.ts", recipeText);
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    const layerBefore = fs.readFileSync(path.join(dir, "out/app.layer"));
    const file = path.join(dir, "out/app/etc/app");
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    fs.rmSync(path.join(dir, "out/.crecipe/state/app.layer.json"));
    const packed = crecipe(dir, ["r.ts"]);
    assert.equal(packed.status, 1);
    assert.match(packed.stderr, /etc\/app changed after app was built .*\n.*fix: .*--check/s);
    const checked = crecipe(dir, ["--check", "r.ts"]);
    assert.equal(checked.status, 0, checked.stderr);
    assert.doesNotMatch(checked.stderr, /rebuilding it/, "the content is the same: nothing to rebuild but the layer");
    assert.ok(fs.readFileSync(path.join(dir, "out/app.layer")).equals(layerBefore));
    // The tree's manifest took the new stat: the next layer reads the file without complaint.
    fs.rmSync(path.join(dir, "out/.crecipe/state/app.layer.json"));
    const again = crecipe(dir, ["r.ts"]);
    assert.equal(again.status, 0, again.stderr);
  });

  it("a file edited deep in a tree with its mtime put back: --check reads it (its inode changed after the manifest)", () => {
    const dir = tempDir();
    write(dir, "r.ts", recipeText);
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    const file = path.join(dir, "out/app/etc/app");
    const times = path.join(dir, "times");
    assert.equal(spawnSync("touch", ["-r", file, times]).status, 0);
    spawnSync("sleep", ["0.02"]); // a ctime after the manifest's mtime
    fs.writeFileSync(file, "APP"); // the same size, in place
    assert.equal(spawnSync("touch", ["-r", times, file]).status, 0);
    assert.match(crecipe(dir, ["r.ts"]).stderr, /0 built/, "a no-op cannot see it");
    const checked = crecipe(dir, ["--check", "r.ts"]);
    assert.equal(checked.status, 0, checked.stderr);
    assert.match(checked.stderr, /out\/app was modified outside crecipe; rebuilding it \(etc\/app was changed\)/);
    assert.equal(fs.readFileSync(file, "utf8"), "app");
  });

  it("an out dir copied with cp -a (every inode new) builds new layers from its trees", () => {
    const dir = tempDir();
    write(dir, "r.ts", recipeText);
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    assert.equal(spawnSync("cp", ["-a", path.join(dir, "out"), path.join(dir, "copy")]).status, 0);
    const first = crecipe(dir, ["-o", "copy", "r.ts"]);
    assert.equal(first.status, 0, first.stderr);
    // Another SOURCE_DATE_EPOCH: every layer is packed again from the copied trees.
    const r = crecipe(dir, ["-o", "copy", "r.ts"], { SOURCE_DATE_EPOCH: "5" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /2 built/);
  });
});

describe("an out dir whose path has a comma or a colon", () => {
  it("runs commands in a snapshot (the overlay's mount options are escaped)", () => {
    const dir = tempDir();
    write(dir, "r.ts", `
import { fs } from ${JSON.stringify(modUrl)};
export const base = fs("base", async (root) => { await root.copyIn("/bin/busybox", "/bin/"); await root.write("etc/conf", "conf"); });
export default fs("app", async (root) => {
  await root.from(base);
  await root.run(["/bin/busybox", "sh", "-c", "busybox cat /etc/conf > /copied"]);
});
`);
    const r = crecipe(dir, ["-o", "out,one:two", "r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(dir, "out,one:two/app/copied"), "utf8"), "conf");
  });
});
