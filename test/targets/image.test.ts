/**
 * An image directory holds its layers by hard link: one inode, two names. Whatever is
 * edited by hand (a layer in place, so its blob too; index.json; a blob removed or added;
 * a blob edited with its mtime put back), a no-op or `--check` finds it as the README
 * says and the rebuilt image's blobs hold the bytes their names say; a bundle refuses an
 * image whose config is not what its name says.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeEach, describe, it } from "node:test";
import { crecipe, modUrl, tempDir, write } from "../helpers.ts";

const recipe = `
import { bundle, fs, image, imageTar, layer } from ${JSON.stringify(modUrl)};
export const base = fs("base", async (root) => {
  await root.write("/etc/conf", "conf\\n");
  await root.write("/bin/tool", "x".repeat(5000));
});
export const top = fs("top", async (root) => {
  await root.from(base);
  await root.write("/init", "#!/bin/sh\\n");
});
export const img = image("img", [layer(base), layer(top, base)], { cmd: ["/init"] });
export const tar = imageTar(img);
export const bun = bundle(img);
export default [img, tar];
`;

const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

/** Every blob of the image holds the bytes its name says. */
function blobsSound(out: string): void {
  const blobs = path.join(out, "img.image/blobs/sha256");
  for (const name of fs.readdirSync(blobs)) assert.equal(sha(path.join(blobs, name)), name, `blobs/sha256/${name}`);
}

/** Overwrite bytes of `file` in place (same inode, same size), its mtime put back when `keepTime`. */
function editInPlace(file: string, at: number, keepTime = false): void {
  const times = path.join(tempDir(), "times");
  // touch -r keeps the nanoseconds (a Date would round them to milliseconds).
  if (keepTime) assert.equal(spawnSync("touch", ["-r", file, times]).status, 0);
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, Buffer.from("XXXX"), 0, 4, at);
  fs.closeSync(fd);
  if (keepTime) {
    assert.equal(spawnSync("touch", ["-r", times, file]).status, 0);
    fs.rmSync(times);
  }
}

describe("an image directory edited by hand", () => {
  let dir: string;
  let out: string;
  let tarBefore: string;
  beforeEach(() => {
    dir = tempDir();
    out = path.join(dir, "out");
    write(dir, "r.ts", recipe);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    tarBefore = sha(path.join(out, "img.image.tar"));
  });

  it("a layer edited in place (its blob with it): a no-op rebuilds the layer and the image, whose blob is sound again", () => {
    editInPlace(path.join(out, "base.layer"), 600);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /out\/base\.layer was modified outside crecipe/);
    assert.match(r.stderr, /out\/img\.image was modified outside crecipe; rebuilding it \(a file in it changed, came or went\)/);
    blobsSound(out);
    assert.equal(sha(path.join(out, "img.image.tar")), tarBefore);
    assert.match(crecipe(dir, ["r.ts"]).stderr, /0 built/);
  });

  for (const [what, edit] of [
    ["index.json appended to", (o: string) => fs.appendFileSync(path.join(o, "img.image/index.json"), " ")],
    ["a blob removed", (o: string) => fs.rmSync(path.join(o, "img.image/blobs/sha256", fs.readdirSync(path.join(o, "img.image/blobs/sha256"))[0]))],
    ["a stray file in blobs/", (o: string) => fs.writeFileSync(path.join(o, "img.image/blobs/sha256/junk"), "junk")],
  ] as const) {
    it(`${what}: a no-op rebuilds the image, and its tar is the same bytes`, () => {
      edit(out);
      const r = crecipe(dir, ["r.ts"]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /out\/img\.image was modified outside crecipe/);
      assert.ok(!fs.existsSync(path.join(out, "img.image/blobs/sha256/junk")));
      blobsSound(out);
      assert.equal(sha(path.join(out, "img.image.tar")), tarBefore);
    });
  }

  it("a blob edited in place with its mtime put back: a no-op misses it, --check finds it", () => {
    const blobs = path.join(out, "img.image/blobs/sha256");
    const layerBlob = JSON.parse(fs.readFileSync(path.join(out, ".crecipe/state/base.layer.json"), "utf8")).value.digest;
    editInPlace(path.join(blobs, layerBlob), 700, true);
    editInPlace(path.join(out, "img.image.tar"), 900, true);
    assert.match(crecipe(dir, ["r.ts"]).stderr, /0 built/, "one stat per output cannot see it");
    const r = crecipe(dir, ["--check", "r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /out\/img\.image was modified outside crecipe; rebuilding it \(blobs\/sha256\/[0-9a-f]{64} does not hold the bytes its name says\)/);
    assert.match(r.stderr, /out\/img\.image\.tar was modified outside crecipe/);
    blobsSound(out);
    assert.equal(sha(path.join(out, "img.image.tar")), tarBefore);
  });

  it("a bundle refuses an image whose config blob was edited with its mtime put back", () => {
    const value = JSON.parse(fs.readFileSync(path.join(out, ".crecipe/state/img.image.json"), "utf8")).value;
    editInPlace(path.join(out, "img.image/blobs/sha256", value.id.replace(/^sha256:/, "")), 2, true);
    const r = crecipe(dir, ["r.ts", "bun"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /FAILED img\.bundle: .*img\.image\/blobs\/sha256\/[0-9a-f]{64} does not hold the bytes its name says/);
    assert.match(r.stderr, /fix: .*--check/);
  });
});
