/**
 * An image with a document attached (attach(): an SBOM beside it, subject the image
 * manifest) pushed to a registry without the referrers API (registry 2.8): the image is
 * pushed as it would be alone, the artifact with the pushed manifest as its subject, and
 * the OCI 1.1 fallback tag sha256-<digest> lists it.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { crecipeAsync, repo, tempDir, write } from "../helpers.ts";
import { type Loopback, skipRegistry, startRegistry } from "./loopback.ts";

const get = (url: string, accept: string) =>
  new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    http.get(url, { headers: { Accept: accept } }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (d) => parts.push(d));
      res.on("end", () => resolve({ status: res.statusCode!, body: Buffer.concat(parts) }));
    }).on("error", reject);
  });

describe("pushing an image with an attached document", { skip: skipRegistry }, () => {
  let registry: Loopback;
  const work = tempDir();

  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry?.stop());

  it("pushes the image unchanged, the artifact as its referrer, and the fallback tag", async () => {
    write(work, "r.ts", `
import { attach, file, push } from ${JSON.stringify(path.join(repo, "lib/mod.ts"))};
import { simpleImage } from ${JSON.stringify(path.join(repo, "recipes/simple.ts"))};
import * as nfs from "node:fs";
export const doc = file("doc.json", (out) => nfs.writeFileSync(out, JSON.stringify({ bomFormat: "CycloneDX", specVersion: "1.5", version: 1 })));
export const plain = push(simpleImage, process.env.REF + ":plain", { name: "plain.push" });
export const withDoc = push(attach(simpleImage, doc), process.env.REF + ":doc", { name: "doc.push" });
export default [plain, withDoc];
`);
    const r = await crecipeAsync(work, ["r.ts"], { REF: `${registry.host}/team/app` }).done;
    assert.equal(r.code, 0, r.err);
    const value = (name: string) => JSON.parse(fs.readFileSync(path.join(work, `out/.crecipe/state/${name}.json`), "utf8")).value;
    const plain = value("plain.push");
    const withDoc = value("doc.push");
    assert.equal(withDoc.digest, plain.digest, "the same image manifest, with or without the document");
    assert.equal(withDoc.referrers.length, 1);

    const base = `http://${registry.host}/v2/team/app`;
    const fallback = await get(`${base}/manifests/sha256-${withDoc.digest.slice(7)}`, "application/vnd.oci.image.index.v1+json");
    assert.equal(fallback.status, 200);
    const index = JSON.parse(fallback.body.toString());
    assert.deepEqual(index.manifests.map((m: { digest: string }) => m.digest), withDoc.referrers);
    assert.equal(index.manifests[0].artifactType, "application/vnd.cyclonedx+json");
    const artifact = JSON.parse((await get(`${base}/manifests/${withDoc.referrers[0]}`, "application/vnd.oci.image.manifest.v1+json")).body.toString());
    assert.equal(artifact.subject.digest, withDoc.digest, "its subject is the pushed manifest");
    const doc = await get(`${base}/blobs/${artifact.layers[0].digest}`, "*/*");
    assert.deepEqual(doc.body, fs.readFileSync(path.join(work, "out/doc.json")));
  });
});
