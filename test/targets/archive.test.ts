/**
 * The archive writer's threads: a large layer (many small files, or one big file) is
 * packed by one thread straight into shared memory and written and hashed by another.
 * Whatever the threads, the bytes and the digest are those of the one-thread writer; an
 * edited file, one edited in the last batch, and a full disk are clear errors that leave
 * the previous output in place.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { crecipe, crecipeAsync, isRoot, modUrl, tempDir, waitFor, withSmallDisk, write } from "../helpers.ts";


const recipe = `
import { fs, layer, imageTar, image } from ${JSON.stringify(modUrl)};
import * as nfs from "node:fs";
export const many = fs("many", async (root) => {
  for (let d = 0; d < 170; d++) {
    nfs.mkdirSync(root.path("d" + d));
    for (let f = 0; f < 100; f++) nfs.writeFileSync(root.path(\`d\${d}/f\${f}\`), "x".repeat((d * 100 + f) % 700));
  }
  // Names too long for ustar (each a pax header): a batch's headers outgrow their buffer
  // and the shared area they go through.
  const deep = ["a", "b", "c"].map((c) => c.repeat(250)).join("/");
  nfs.mkdirSync(root.path(deep), { recursive: true });
  for (let f = 0; f < 300; f++) nfs.writeFileSync(root.path(\`\${deep}/\${"n".repeat(200)}\${f}\`), String(f));
  // Files that end a ring slot (256 KiB) exactly, fill two, or pass one by a byte: each
  // batch of files is given the slots its bytes fill before they are read.
  nfs.writeFileSync(root.path("d5/exact"), Buffer.alloc(256 << 10, 7));
  nfs.writeFileSync(root.path("d6/two"), Buffer.alloc(512 << 10, 8));
  nfs.writeFileSync(root.path("d7/over"), Buffer.alloc((256 << 10) + 1, 9));
  // Larger than the whole ring (4 MiB): its batch waits for slots the writer frees while
  // the other packer's next batch waits behind it.
  nfs.writeFileSync(root.path("d8/huge"), Buffer.alloc(6 << 20, 10));
});
export const big = fs("big", async (root) => {
  const data = Buffer.alloc(24 << 20);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
  nfs.mkdirSync(root.path("sub"));
  await root.write("sub/big.bin", data); // below the top: a no-op does not see an edit there, the layer must
  await root.write("small", "s");
});
export const manyLayer = layer(many);
export const bigLayer = layer(big);
export default [manyLayer, bigLayer, imageTar(image("both", [manyLayer, bigLayer]))];
`;

const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

describe("archives written by several threads", () => {
  const dir = tempDir();
  before(() => {
    write(dir, "r.ts", recipe);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.stderr);
  });

  it("give the same bytes and digests as one thread, and as one packing thread", () => {
    // Many small files: two packers read side by side (packersFor), unless told otherwise.
    for (const [out, env] of [["one", { CRECIPE_THREADS: "0" }], ["onepacker", { CRECIPE_PACKERS: "1" }]] as const) {
      const r = crecipe(dir, ["-o", out, "r.ts"], env);
      assert.equal(r.status, 0, r.stderr);
      for (const f of ["many.layer", "big.layer", "both.image.tar"]) {
        assert.equal(sha(path.join(dir, "out", f)), sha(path.join(dir, out, f)), `${f} differs (${out})`);
      }
    }
    for (const name of ["many", "big"]) {
      const value = JSON.parse(fs.readFileSync(path.join(dir, `out/.crecipe/state/${name}.layer.json`), "utf8")).value;
      assert.equal(value.digest, sha(path.join(dir, "out", `${name}.layer`)));
    }
    const names = spawnSync("tar", ["-tf", path.join(dir, "out/many.layer")], { encoding: "utf8", maxBuffer: 1 << 26 }).stdout.split("\n").filter(Boolean);
    assert.equal(names.length, 170 + 17000 + 3 + 300 + 4);
    assert.ok(names.some((n) => n.length > 900), "a long name round-trips");
  });

  // The packing thread checks each file it opens (fstat) against its tree's record.
  for (const [file, where] of [["d0/f1", "in the first batch"], ["d77/f50", "in the middle"], ["d169/f99", "as the last file"]]) {
    it(`refuse a small file edited by hand ${where}, and keep the old layer`, () => {
      const before = sha(path.join(dir, "out/many.layer"));
      const edited = path.join(dir, "out/many", file);
      const kept = path.join(dir, "kept");
      fs.linkSync(edited, kept); // the original inode, put back afterwards as it was
      fs.writeFileSync(`${edited}.new`, "edited");
      fs.renameSync(`${edited}.new`, edited);
      try {
        fs.rmSync(path.join(dir, "out/.crecipe/state/many.layer.json"), { force: true });
        const r = crecipe(dir, ["r.ts", "manyLayer"]);
        assert.equal(r.status, 1);
        assert.match(r.stderr, new RegExp(`FAILED many\\.layer: ${file} changed after many was built`));
        assert.equal(sha(path.join(dir, "out/many.layer")), before);
        assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/tmp")), [], "no temp left behind");
      } finally {
        fs.renameSync(kept, edited);
      }
    });
  }

  // A race, not a file edited before the run: files are replaced while the packing thread
  // works through the tree. Whatever it meets, the layer holds the recorded bytes or the
  // run fails and leaves the old layer: never bytes the tree's manifest does not describe.
  it("files replaced while the layer is packed: an error, or the recorded bytes, never others", async () => {
    const before = sha(path.join(dir, "out/many.layer"));
    const files = ["d120/f1", "d150/f2", "d169/f99"].map((f) => path.join(dir, "out/many", f));
    const kept = files.map((f, i) => {
      const k = path.join(dir, `kept-race${i}`);
      fs.linkSync(f, k);
      return k;
    });
    try {
      fs.rmSync(path.join(dir, "out/.crecipe/state/many.layer.json"), { force: true });
      const run = crecipeAsync(dir, ["r.ts", "manyLayer"]);
      const tmp = path.join(dir, "out/.crecipe/tmp");
      await waitFor(() => fs.existsSync(tmp) && fs.readdirSync(tmp).some((d) => d.startsWith("many.layer.")), 20_000);
      let stop = false;
      void run.done.then(() => (stop = true));
      const sizes = files.map((f) => fs.statSync(f).size);
      for (let n = 0; !stop; n++) {
        files.forEach((f, i) => {
          fs.writeFileSync(`${f}.new`, Buffer.alloc(sizes[i], 0x61 + (n % 26))); // the same size: only the inode tells
          fs.renameSync(`${f}.new`, f);
        });
        await new Promise((resolve) => setImmediate(resolve));
      }
      const r = await run.done;
      if (r.code === 0) {
        // Packed before any replacement reached it: the recorded bytes, as the one-thread layer has them.
        assert.equal(sha(path.join(dir, "out/many.layer")), sha(path.join(dir, "one/many.layer")));
      } else {
        assert.equal(r.code, 1, r.err);
        assert.match(r.err, /FAILED many\.layer: d1[256]\d\/f\d+ changed after many was built/);
        assert.equal(sha(path.join(dir, "out/many.layer")), before);
      }
      assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/tmp")), [], "no temp left behind");
    } finally {
      files.forEach((f, i) => fs.renameSync(kept[i], f));
    }
  });

  it("refuse a large file edited by hand (the same size, a new inode)", () => {
    const before = sha(path.join(dir, "out/big.layer"));
    const edited = path.join(dir, "out/big/sub/big.bin");
    const kept = path.join(dir, "kept-big");
    fs.linkSync(edited, kept);
    fs.writeFileSync(`${edited}.new`, Buffer.alloc(24 << 20, 1));
    fs.renameSync(`${edited}.new`, edited);
    try {
      fs.rmSync(path.join(dir, "out/.crecipe/state/big.layer.json"), { force: true });
      const r = crecipe(dir, ["r.ts", "bigLayer"]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /FAILED big\.layer: sub\/big\.bin changed after big was built \(25165824 → 25165824 bytes\)/);
      assert.equal(sha(path.join(dir, "out/big.layer")), before);
      assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/tmp")), [], "no temp left behind");
    } finally {
      fs.renameSync(kept, edited);
    }
  });
});

/** Put `file` aside (a hard link), run `edit`, then `check`; the file comes back as it was. */
function aside(dir: string, file: string, edit: () => void, check: () => void): void {
  const kept = path.join(dir, `kept-${path.basename(file)}`);
  fs.linkSync(file, kept);
  try {
    edit();
    check();
  } finally {
    fs.rmSync(file, { force: true });
    fs.renameSync(kept, file);
  }
}

describe("a file that is no longer a file of its tree", () => {
  const dir = tempDir();
  before(() => {
    write(dir, "r.ts", recipe + `
export const small = fs("small", async (root) => { await root.write("a/data.bin", "data"); await root.write("b", "b"); });
export const smallLayer = layer(small);
`);
    const r = crecipe(dir, ["r.ts", "manyLayer", "bigLayer", "smallLayer"]);
    assert.equal(r.status, 0, r.stderr);
  });
  const rebuild = (name: string) => {
    fs.rmSync(path.join(dir, `out/.crecipe/state/${name}.layer.json`), { force: true });
    return crecipe(dir, ["r.ts", `${name}Layer`], {}, 60_000);
  };
  // Small (packed here) and large (packed by the packer thread) trees.
  for (const [name, file] of [["small", "a/data.bin"], ["many", "d120/f7"]]) {
    it(`${name}: a FIFO in a file's place is refused at once, not waited on`, () => {
      const host = path.join(dir, "out", name, file);
      aside(dir, host, () => {
        fs.rmSync(host);
        assert.equal(spawnSync("mkfifo", [host]).status, 0);
      }, () => {
        const r = rebuild(name);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`FAILED ${name}\\.layer: ${file} changed after ${name} was built`));
      });
    });

    it(`${name}: a file removed, or replaced by a symlink out of the tree, is named with the --check fix`, () => {
      const host = path.join(dir, "out", name, file);
      for (const replace of [() => fs.rmSync(host), () => (fs.rmSync(host), fs.symlinkSync("/etc/passwd", host))]) {
        aside(dir, host, replace, () => {
          const r = rebuild(name);
          assert.equal(r.status, 1, r.stderr);
          assert.match(r.stderr, new RegExp(`FAILED ${name}\\.layer: ${file} was removed after ${name} was built, or replaced by a symlink`));
          assert.match(r.stderr, /fix: .*--check/);
          assert.doesNotMatch(r.stderr, /root:x:0:0/);
        });
      }
    });
  }

  it("a large file written to in place while it is packed: an error, or the recorded bytes, never others", async () => {
    const host = path.join(dir, "out/big/sub/big.bin");
    const recorded = fs.readFileSync(host);
    const before = sha(path.join(dir, "out/big.layer"));
    try {
      fs.rmSync(path.join(dir, "out/.crecipe/state/big.layer.json"), { force: true });
      const run = crecipeAsync(dir, ["r.ts", "bigLayer"]);
      let stop = false;
      void run.done.then(() => (stop = true));
      const fd = fs.openSync(host, "r+");
      for (let n = 0; !stop; n++) {
        fs.writeSync(fd, Buffer.alloc(1 << 20, 0x61 + (n % 26)), 0, 1 << 20, (n % 24) << 20); // same size, same inode
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      fs.closeSync(fd);
      const r = await run.done;
      if (r.code === 0) assert.equal(sha(path.join(dir, "out/big.layer")), before, "the recorded bytes");
      else {
        assert.match(r.err, /FAILED big\.layer: sub\/big\.bin (was written to while it was packed|changed after big was built)/);
        assert.equal(sha(path.join(dir, "out/big.layer")), before);
      }
    } finally {
      fs.writeFileSync(`${host}.new`, recorded);
      fs.renameSync(`${host}.new`, host);
      // The tree's manifest records the inode: put the tree back as it was built.
      const r = crecipe(dir, ["--check", "r.ts", "big"]);
      assert.equal(r.status, 0, r.stderr);
    }
  });

  it("a large file whose links change while it is packed (another tree's copy made and removed): packed as recorded", async () => {
    // crecipe itself does this: a tree made with cp -al shares its inodes with the tree it
    // copied, and the previous copy is removed in the background while the new one is packed.
    const host = path.join(dir, "out/big/sub/big.bin");
    const before = sha(path.join(dir, "out/big.layer"));
    for (const env of [{}, { CRECIPE_THREADS: "0" }]) {
      fs.rmSync(path.join(dir, "out/.crecipe/state/big.layer.json"), { force: true });
      const run = crecipeAsync(dir, ["r.ts", "bigLayer"], env);
      let stop = false;
      void run.done.then(() => (stop = true));
      const other = path.join(dir, "elsewhere");
      for (let n = 0; !stop; n++) {
        fs.rmSync(other, { force: true });
        fs.linkSync(host, other); // the inode's ctime moves; its bytes and mtime do not
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      fs.rmSync(other, { force: true });
      const r = await run.done;
      assert.equal(r.code, 0, r.err);
      assert.equal(sha(path.join(dir, "out/big.layer")), before);
    }
  });
});

describe("a full disk", { skip: isRoot ? false : "mounting a small tmpfs needs root" }, () => {
  /** Build `tree` on a tmpfs of `size`, then its layer, which does not fit: a clear error. */
  const layerOnFullDisk = (tree: string, size: string) => {
    const dir = tempDir();
    write(dir, "r.ts", recipe);
    withSmallDisk(dir, size, (small) => {
      const first = crecipe(dir, ["-o", small, "r.ts", tree]);
      assert.equal(first.status, 0, first.stderr);
      const r = crecipe(dir, ["-o", small, "r.ts", `${tree}Layer`], {}, 60_000);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`FAILED ${tree}\\.layer: .*(ENOSPC|no space)`, "i"));
      assert.match(r.stderr, /fix:\s+free some space/, "a fix line, wherever the write failed");
      assert.ok(!fs.existsSync(path.join(small, `${tree}.layer`)), "no partial layer");
      assert.deepEqual(fs.readdirSync(path.join(small, ".crecipe/tmp")), [], "no temp left behind");
    });
  };

  it("is a clear error, and the previous output and state stay", () => layerOnFullDisk("big", "40m"));

  // The tree takes ~77 MiB of tmpfs (a page a file), its layer ~34 MiB more.
  it("met while two threads pack many small files: the same error, and nothing waits", () => layerOnFullDisk("many", "92m"));
});
