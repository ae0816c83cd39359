/**
 * Trees with every kind of entry go through files → layer → a real tar and come back
 * the same; deletions become whiteouts that Docker honours; bad paths are clear errors;
 * an unprivileged user gets the same bytes as root.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseList } from "../../lib/formats/filelist.ts";
import { scanTree } from "../../lib/tree/scan.ts";
import { assertListFailed, crecipe, crecipeAsTestUser, hasTestUser, isRoot, layerWhoseListFails, modUrl, tempDir, write } from "../helpers.ts";

const dockerUp = spawnSync("docker", ["info"]).status === 0;

const trickyRecipe = `
import { $, fs, image, layer, run } from ${JSON.stringify(modUrl)};
import * as nfs from "node:fs";
const bytes = (root: { dir: string }, name: number[]) => Buffer.concat([Buffer.from(root.dir + "/"), Buffer.from(name)]);
export const tricky = fs("tricky", async (root) => {
  await root.write("with\\nnewline", "nl");
  nfs.writeFileSync(bytes(root, [0x6e, 0x6f, 0x6e, 0xff, 0xfe]), "not utf-8");
  const long = "d/" + "x".repeat(150) + "/" + "y".repeat(150);
  await root.write(long, "long path");
  await root.write("with space", "s");
  await root.write("-leading-dash", "dash");
  await root.symlink("/etc/absolute/target", "abs-link");
  await root.symlink("missing/target", "dangling");
  await root.write("hard1", "one inode, two names");
  nfs.linkSync(root.path("hard1"), root.path("hard2"));
  await root.write("z/target", "linked across directories");
  nfs.linkSync(root.path("z/target"), root.path("z-link")); // "z-link" sorts before "z/target"
  await root.mkdir("empty");
  await $\`mkfifo \${root.path("fifo")}\`;
  await root.write("setuid", "su", 0o4755);
  await root.write("sticky/file", "t");
  await root.chmod("sticky", 0o1777);
  await root.write("bigid", "id");
  await root.chown("bigid", 300000, 300001);
});
export const trickyLayer = layer(tricky);

export const base = fs("base", async (root) => {
  await root.copyIn("/bin/busybox", "/bin/");
  await root.write("etc/keep", "k");
  await root.write("etc/gone", "g");
  await root.write("dir/a", "a");
  await root.write("dir/b", "b");
});
export const top = fs("top", async (root) => {
  await root.from(base);
  nfs.rmSync(root.path("etc/gone"));
  nfs.rmSync(root.path("dir"), { recursive: true });
  await root.write("dir/c", "c");
});
export const whImage = image("wh", [layer(base), layer(top, base)], { cmd: ["/bin/busybox", "ls", "/etc", "/dir"] });
export const whRun = run.docker(whImage);
`;

function built(dir: string, ...targets: string[]) {
  const r = crecipe(dir, ["r.ts", ...targets]);
  assert.equal(r.status, 0, r.stderr);
}

describe("layers", () => {
  const dir = tempDir();
  write(dir, "r.ts", trickyRecipe);

  it("a tricky tree round-trips through files, layer and GNU tar", { skip: isRoot ? false : "extracting owners needs root" }, () => {
    built(dir, "trickyLayer");
    const listed = parseList(fs.readFileSync(path.join(dir, "out/tricky.list"), "utf8")).entries;
    const names = listed.map((e) => e.path.toString("latin1"));
    for (const expected of ["with\nnewline", "non\xff\xfe", "with space", "-leading-dash", "abs-link", "dangling", "hard2", "empty", "fifo", "setuid"]) {
      assert.ok(names.includes(expected), `${JSON.stringify(expected)} is listed`);
    }
    const extracted = path.join(dir, "extracted");
    fs.mkdirSync(extracted);
    const tar = spawnSync("tar", ["-xpf", path.join(dir, "out/tricky.layer"), "--numeric-owner", "--same-owner", "-C", extracted], { encoding: "utf8" });
    assert.equal(tar.status, 0, tar.stderr);
    const back = scanTree(extracted, undefined, { diskOwners: true });
    assert.deepEqual(back, listed);
    const byName = new Map(back.map((e) => [e.path.toString("latin1"), e]));
    assert.equal(byName.get("hard2")!.type, "hardlink");
    assert.equal(byName.get("setuid")!.mode, 0o4755);
    assert.equal(byName.get("sticky")!.mode, 0o1777);
    assert.equal(byName.get("bigid")!.uid, 300000);
    assert.equal(byName.get("fifo")!.type, "fifo");
    assert.equal(byName.get("abs-link")!.linkTarget!.toString(), "/etc/absolute/target");
  });

  it("the layer has fixed times and numeric owners", () => {
    built(dir, "trickyLayer");
    const listing = spawnSync("tar", ["-tvf", path.join(dir, "out/tricky.layer"), "--numeric-owner"], { encoding: "utf8", env: { ...process.env, TZ: "UTC" } }).stdout;
    for (const line of listing.split("\n").filter(Boolean)) assert.match(line, / 1970-01-01 00:00 /);
    assert.match(listing, / 300000\/300001 /);
  });

  it("deletions become whiteouts that Docker honours", { skip: dockerUp ? false : "no Docker daemon (run the tests through npm test)" }, () => {
    built(dir, "whRun");
    const list = fs.readFileSync(path.join(dir, "out/top.list"), "utf8");
    assert.match(list, /^dir\/a deleted/m);
    assert.match(list, /^dir\/b deleted/m);
    assert.match(list, /^etc\/gone deleted/m);
    const tarNames = spawnSync("tar", ["-tf", path.join(dir, "out/top.layer")], { encoding: "utf8" }).stdout.split("\n");
    assert.ok(tarNames.includes("etc/.wh.gone"), tarNames.join(" "));
    assert.ok(tarNames.includes("dir/.wh..wh..opq"), "a directory replaced whole is opaque: " + tarNames.join(" "));
    assert.ok(!tarNames.includes("dir/.wh.a"), tarNames.join(" "));
    const [dirListing, etcListing] = fs.readFileSync(path.join(dir, "out/wh.rundocker"), "utf8").split("\n\n");
    assert.equal(dirListing, "/dir:\nc", "only the new dir/c, not a or b");
    const etc = etcListing.split("\n");
    assert.ok(etc.includes("keep") && !etc.includes("gone"), etcListing); // Docker adds hostname, hosts, …
  });

  it("an unprivileged user builds the same layer bytes as root", { skip: isRoot && hasTestUser ? false : "needs root and the crecipe-test user (scripts/setup.sh --for-tests)" }, () => {
    built(dir, "trickyLayer");
    const userDir = tempDir();
    fs.chmodSync(userDir, 0o777);
    write(userDir, "r.ts", trickyRecipe);
    const r = crecipeAsTestUser(userDir, ["-q", "r.ts", "trickyLayer"]);
    assert.equal(r.status, 0, r.stderr);
    const owner = fs.statSync(path.join(userDir, "out/tricky.layer")).uid;
    assert.notEqual(owner, 0, "built by the unprivileged user");
    assert.ok(fs.readFileSync(path.join(userDir, "out/tricky.layer")).equals(fs.readFileSync(path.join(dir, "out/tricky.layer"))));
  });
});

describe("bad trees", () => {
  it("a .wh. name in the source and a ../ escape are clear errors", () => {
    const dir = tempDir();
    write(dir, "r.ts", `
import { fs, files } from ${JSON.stringify(modUrl)};
export const wh = files(fs("wh", async (root) => { await root.write("etc/.wh.x", ""); }));
export const escape = fs("escape", async (root) => { await root.write("../outside", "x"); });
`);
    const wh = crecipe(dir, ["r.ts", "wh"]);
    assert.equal(wh.status, 1);
    assert.match(wh.stderr, /FAILED wh\.files: .*etc\/\.wh\.x/);
    const escape = crecipe(dir, ["r.ts", "escape"]);
    assert.equal(escape.status, 1);
    assert.match(escape.stderr, /FAILED escape: .*"\.\.\/outside" contains "\.\."/);
    assert.equal(fs.existsSync(path.join(dir, "outside")), false);
  });

  it("a large tree's layer whose list fails ends the run: the threads started for it hold nothing", () => {
    const dir = layerWhoseListFails();
    assertListFailed(crecipe(dir, ["r.ts", "big"], {}, 60_000));
    assert.equal(fs.existsSync(path.join(dir, "out/big.layer")), false);
  });

  it("a failing fs builder leaves the previous tree intact", () => {
    const dir = tempDir();
    write(dir, "flag", "first");
    write(dir, "r.ts", `
import { fs, here } from ${JSON.stringify(modUrl)};
export const tree = fs("tree", async (root) => {
  const flag = (await root.ctx.read(here("flag"))).toString();
  await root.write("content", flag);
  if (flag === "fail") throw new Error("the builder gave up");
});`);
    built(dir, "tree");
    write(dir, "flag", "fail");
    const r = crecipe(dir, ["r.ts", "tree"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /FAILED tree: the builder gave up/);
    assert.equal(fs.readFileSync(path.join(dir, "out/tree/content"), "utf8"), "first");
  });
});
