/**
 * A signal stops a build where it is: while a layer is written, while a tree's manifest
 * is made at commit. The exit code says which signal (128 + its number), nothing new is
 * committed (the previous output and state stay), and no temp is left.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { crecipe, crecipeAsync, modUrl, tempDir, waitFor, write } from "../helpers.ts";

// A tree of 30 000 small files and a 64 MB one: its manifest and its layer take a while.
const recipe = (version: string) => `
import { fs, layer } from ${JSON.stringify(modUrl)};
import * as nfs from "node:fs";
import { here } from ${JSON.stringify(modUrl)};
export const big = fs("big", async (root) => {
  for (let d = 0; d < 300; d++) {
    nfs.mkdirSync(root.path("d" + d));
    for (let f = 0; f < 100; f++) nfs.writeFileSync(root.path(\`d\${d}/f\${f}\`), "${version}" + d + "/" + f);
  }
  await root.write("big.bin", Buffer.alloc(64 << 20, 1));
  nfs.writeFileSync(here("builder-done"), "");
});
export default layer(big);
`;

const stateOf = (dir: string, name: string) => fs.readFileSync(path.join(dir, `out/.crecipe/state/${name}.json`), "utf8");

describe("signals", () => {
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129], ["SIGQUIT", 131]] as const) {
    it(`${signal} while a layer is written: exit ${code}, the old layer and state stay, no temp`, async () => {
      const dir = tempDir();
      write(dir, "r.ts", recipe("v1"));
      assert.equal(crecipe(dir, ["r.ts"]).status, 0);
      const before = { layer: fs.readFileSync(path.join(dir, "out/big.layer")), state: stateOf(dir, "big.layer") };
      fs.rmSync(path.join(dir, "out/.crecipe/state/big.layer.json"));
      fs.writeFileSync(path.join(dir, "out/.crecipe/state/big.layer.json"), before.state.replace(/"identity":"[0-9a-f]+"/, '"identity":"0"'));
      const stale = stateOf(dir, "big.layer");
      const { child, done } = crecipeAsync(dir, ["r.ts"]);
      // The layer's temp output appears once the layer is being written.
      await waitFor(() => fs.readdirSync(path.join(dir, "out/.crecipe/tmp")).some((d) => d.startsWith("big.layer.") && fs.existsSync(path.join(dir, "out/.crecipe/tmp", d, "out"))));
      child.kill(signal);
      const r = await done;
      assert.equal(r.code, code, r.err);
      assert.match(r.err, new RegExp(`interrupted by ${signal}`));
      assert.ok(fs.readFileSync(path.join(dir, "out/big.layer")).equals(before.layer), "the old layer");
      assert.equal(stateOf(dir, "big.layer"), stale, "the old state");
      assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/tmp")), [], "no temp left");
    });
  }

  it("SIGTERM while a tree's manifest is made at commit: nothing new is committed", async () => {
    const dir = tempDir();
    write(dir, "r.ts", recipe("v1"));
    assert.equal(crecipe(dir, ["r.ts", "big"]).status, 0);
    const state = stateOf(dir, "big");
    fs.rmSync(path.join(dir, "builder-done"));
    write(dir, "r.ts", recipe("v2"));
    const { child, done } = crecipeAsync(dir, ["r.ts", "big"]);
    await waitFor(() => fs.existsSync(path.join(dir, "builder-done")));
    child.kill("SIGTERM");
    const r = await done;
    assert.equal(r.code, 143, r.err);
    assert.equal(stateOf(dir, "big"), state, "the old state");
    assert.equal(fs.readFileSync(path.join(dir, "out/big/d0/f0"), "utf8"), "v10/0", "the old tree");
    assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/tmp")), [], "no temp left");
    void os;
  });
});
