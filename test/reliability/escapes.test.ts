/**
 * No Root method ever writes outside the tree, whatever symlinks the tree holds: every
 * method × {an absolute link to a host directory, a relative link climbing out, a link to
 * a directory, a chain of links}, at the last component and in the middle of the path,
 * in a tree of its own and in a snapshot. Each operation either lands inside the tree or
 * fails with a clear error; a host sentinel directory and file stay as they were.
 * Run as root, so an escape would really write.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { crecipe, modUrl, tempDir, write, isRoot } from "../helpers.ts";


/** Everything about a directory tree: names, types, modes, contents. */
function snapshot(dir: string): string {
  const lines: string[] = [];
  const walk = (p: string, rel: string) => {
    const st = fs.lstatSync(p);
    lines.push(`${rel} ${st.mode.toString(8)} ${st.isFile() ? fs.readFileSync(p, "latin1") : st.isSymbolicLink() ? "-> " + fs.readlinkSync(p) : ""}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n), `${rel}/${n}`);
  };
  walk(dir, ".");
  return lines.join("\n");
}

describe("writes never escape the tree", { skip: isRoot ? false : "an escape is only visible where the builder may write anywhere: run as root" }, () => {
  const dir = tempDir();
  const sentinel = path.join(dir, "sentinel");
  const hostFile = path.join(dir, "host.txt");
  const hostDir = path.join(dir, "hostdir");
  // Links as a tree would hold them: absolute ones name host paths when read on the host.
  const LINKS: Record<string, string> = {
    absolute: sentinel,
    climbing: "../".repeat(30) + sentinel.slice(1),
    todir: "sub",
    chain: "absolute",
    tofile: path.join(sentinel, "file"),
  };
  const OPS: Record<string, (link: string) => string> = {
    writeLast: (l) => `await root.write("${l}", "x");`,
    writeThrough: (l) => `await root.write("${l}/file", "x");`,
    writeNew: (l) => `await root.write("${l}/new", "x");`,
    symlinkLast: (l) => `await root.symlink("elsewhere", "${l}");`,
    symlinkThrough: (l) => `await root.symlink("elsewhere", "${l}/file");`,
    mkdirThrough: (l) => `await root.mkdir("${l}/newdir");`,
    chmodLast: (l) => `await root.chmod("${l}", 0o777);`,
    chmodThrough: (l) => `await root.chmod("${l}/file", 0o777);`,
    copyInLast: (l) => `await root.copyIn(${JSON.stringify(hostFile)}, "${l}");`,
    copyInInto: (l) => `await root.copyIn(${JSON.stringify(hostFile)}, "${l}/");`,
    copyInThrough: (l) => `await root.copyIn(${JSON.stringify(hostFile)}, "${l}/file");`,
    copyInDir: (l) => `await root.copyIn(${JSON.stringify(hostDir)}, "${l}");`,
    removeLast: (l) => `await root.remove("${l}");`,
    removeThrough: (l) => `await root.remove("${l}/file");`,
    mknodThrough: (l) => `await root.mknod("${l}/file", "char", 1, 3);`,
    fromOver: () => `await root.from(other);`,
    run: (l) => `await root.run(["/bin/busybox", "sh", "-c", "echo x > /${l}/file; busybox chmod 777 /${l}"]);`,
    // Host tools on root.path(): a link as the last part must say which it means.
    pathLast: (l) => `nfs.writeFileSync(root.path("${l}"), "x");`,
    pathFollowLast: (l) => `const p = root.path("${l}", { followLast: true }); nfs.writeFileSync(nfs.existsSync(p) && nfs.statSync(p).isDirectory() ? p + "/f" : p, "x");`,
    pathThrough: (l) => `nfs.writeFileSync(root.path("${l}/file"), "x");`,
    pathLinkItself: (l) => `nfs.rmSync(root.path("${l}", { followLast: false }));`,
  };

  const recipe = () => {
    const lines = [
      `import { fs } from ${JSON.stringify(modUrl)};`,
      `import * as nfs from "node:fs";`,
      `const links = ${JSON.stringify(LINKS)};`,
      `const setUp = async (root: any) => {`,
      `  await root.copyIn("/bin/busybox", "/bin/");`,
      `  await root.write("sub/file", "inside");`,
      `  for (const [name, to] of Object.entries(links)) await root.symlink(to, name);`,
      `};`,
      `export const base = fs("base", setUp);`,
      `export const other = fs("other", async (root) => { for (const name of Object.keys(links)) await root.write(name + "/file", "from other"); });`,
    ];
    for (const [op, make] of Object.entries(OPS)) {
      for (const link of Object.keys(LINKS)) {
        lines.push(`export const own_${op}_${link} = fs("own_${op}_${link}", async (root) => { await setUp(root); ${make(link)} });`);
        lines.push(`export const snap_${op}_${link} = fs("snap_${op}_${link}", async (root) => { await root.from(base); ${make(link)} });`);
      }
    }
    return lines.join("\n") + "\n";
  };

  let before0: string;
  before(() => {
    fs.mkdirSync(sentinel);
    fs.writeFileSync(path.join(sentinel, "file"), "sentinel");
    fs.chmodSync(sentinel, 0o755);
    fs.writeFileSync(hostFile, "host");
    fs.mkdirSync(hostDir);
    fs.writeFileSync(path.join(hostDir, "file"), "host dir");
    write(dir, "r.ts", recipe());
    before0 = snapshot(sentinel);
  });

  for (const op of Object.keys(OPS)) {
    it(`${op}: lands in the tree or fails clearly, never outside`, () => {
      for (const link of Object.keys(LINKS)) {
        for (const kind of ["own", "snap"]) {
          const r = crecipe(dir, ["r.ts", `${kind}_${op}_${link}`]);
          assert.ok(r.status === 0 || (r.status === 1 && /FAILED /.test(r.stderr) && !/\n\s+at /.test(r.stderr)), `${kind}_${op}_${link}: ${r.stderr}`);
          assert.equal(snapshot(sentinel), before0, `${kind}_${op}_${link} changed the host sentinel`);
          assert.ok(!fs.existsSync(path.join(dir, "new")) && !fs.existsSync(path.join(dir, "newdir")), `${kind}_${op}_${link} wrote beside the sentinel`);
        }
      }
    });
  }
});
