/**
 * A registry that dies in the middle of a push leaves nothing half-visible: blobs are
 * pushed first and the manifest last, so the tag does not exist until everything it
 * names is there. The next push, the registry back, completes it.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { crecipeAsync, repo, tempDir, write } from "../helpers.ts";
import { type Loopback, skipRegistry, startRegistry } from "./loopback.ts";

const status = (url: string) =>
  new Promise<number>((resolve, reject) => {
    http.get(url, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } }, (res) => (res.resume(), resolve(res.statusCode!))).on("error", reject);
  });

describe("a registry killed mid-push", { skip: skipRegistry }, () => {
  let registry: Loopback;
  const work = tempDir();
  const out = path.join(work, "out");

  before(async () => {
    registry = await startRegistry();
    write(work, "push.ts", `import { push } from ${JSON.stringify(path.join(repo, "lib/mod.ts"))};
import { simpleImage } from ${JSON.stringify(path.join(repo, "recipes/simple.ts"))};
export default push(simpleImage, process.env.REF!);
`);
  });
  after(() => registry?.stop());

  it("leaves no manifest; the next push completes it", async () => {
    const env = { REF: `${registry.host}/simple:1` };
    // Dies as the second blob's bytes arrive: one blob may be in, the manifest must not be.
    let seen = 0;
    registry.killWhen((method, url) => method === "PUT" && url.includes("/blobs/uploads/") && ++seen === 2);
    const failed = await crecipeAsync(work, ["-o", out, path.join(work, "push.ts")], env).done;
    assert.equal(failed.code, 1, failed.err);
    assert.match(failed.err, /simple\.push/);
    assert.match(failed.err, /fix: /);
    assert.ok(!fs.existsSync(path.join(out, "simple.push")), "no push output");
    assert.ok(!registry.requests.some((r) => r.url.includes("/manifests/")), "the manifest was never sent");
    await registry.restart();
    assert.equal(await status(`http://${registry.host}/v2/simple/manifests/1`), 404);

    const again = await crecipeAsync(work, ["-o", out, path.join(work, "push.ts")], env).done;
    assert.equal(again.code, 0, again.err);
    assert.equal(await status(`http://${registry.host}/v2/simple/manifests/1`), 200);
  });
});
