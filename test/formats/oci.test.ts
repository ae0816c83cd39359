/**
 * Image metadata against the OCI image-spec's own JSON schemas (test/fixtures): configs of
 * every shape a recipe can give, references with a registry port, an image without
 * layers refused.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FormatError } from "../../lib/formats/entry.ts";
import { defaultTag, imageMetadata, parseReference } from "../../lib/formats/oci.ts";
import { schemaErrors } from "../oci-schemas.ts";

const layer = { digest: "a".repeat(64), size: 1024, createdBy: "crecipe test" };

describe("image references", () => {
  it("a registry's port is not a tag; a reference without a tag gets latest", () => {
    assert.deepEqual(parseReference("registry:5000/app"), { repository: "registry:5000/app", tag: "latest", digest: undefined, full: "registry:5000/app:latest" });
    assert.deepEqual(parseReference("registry:5000/team/app:1.2"), { repository: "registry:5000/team/app", tag: "1.2", digest: undefined, full: "registry:5000/team/app:1.2" });
    assert.equal(parseReference("app").full, "app:latest");
    assert.equal(parseReference(`app@sha256:${"b".repeat(64)}`).tag, undefined);
  });

  it("a bad name or tag is an error that says what a reference may hold", () => {
    assert.throws(() => parseReference("App:1"), FormatError);
    assert.throws(() => parseReference("app:-bad"), /tag/);
  });

  it("the default tag is the image's name made valid", () => {
    assert.equal(defaultTag("Simple"), "simple:latest");
    assert.equal(defaultTag("my+app"), "my-app:latest");
  });
});

describe("image metadata", () => {
  const configs = {
    plain: {},
    everything: { entrypoint: ["/bin/sh", "-c"], cmd: ["echo hi"], env: ["A=1"], workdir: "/srv", user: "1000:1000", labels: { b: "2", a: "1" }, tag: "registry:5000/team/app:1.2" },
  };
  for (const [name, config] of Object.entries(configs)) {
    it(`${name}: the config, manifest and index pass the image-spec schemas`, () => {
      const meta = imageMetadata("app", [layer, { ...layer, digest: "c".repeat(64) }], config, 1700000000);
      assert.deepEqual(schemaErrors("config", JSON.parse(meta.config.bytes.toString())), []);
      assert.deepEqual(schemaErrors("manifest", JSON.parse(meta.manifest.bytes.toString())), []);
      const index = JSON.parse(meta.index.toString());
      assert.deepEqual(schemaErrors("index", index), []);
      assert.deepEqual(schemaErrors("layout", JSON.parse(meta.ociLayout.toString())), []);
      assert.deepEqual(index.manifests[0].platform, { architecture: "amd64", os: "linux" });
    });
  }

  it("the ref.name annotation is the tag, even behind a registry port", () => {
    const index = JSON.parse(imageMetadata("app", [layer], { tag: "registry:5000/app" }, 0).index.toString());
    assert.equal(index.manifests[0].annotations["org.opencontainers.image.ref.name"], "latest");
    assert.equal(index.manifests[0].annotations["io.containerd.image.name"], "registry:5000/app:latest");
  });

  it("an image without layers is refused", () => {
    assert.throws(() => imageMetadata("app", [], {}, 0), /no layers/);
  });
});
