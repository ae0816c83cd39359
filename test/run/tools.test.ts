/**
 * recipes/tools.ts: a static busybox tool tree used through runWith in a tree with no
 * shell; the image runs in Docker and in runc and ships no tool.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { runtimeProblem } from "../../lib/mod.ts";
import { crecipe, repo, tempDir } from "../helpers.ts";

const dockerUp = spawnSync("sh", ["-c", "docker info"]).status === 0;
const runcProblem = await runtimeProblem("runc");

describe("recipes/tools.ts", () => {
  const work = tempDir();
  const out = path.join(work, "out");
  const recipe = path.join(repo, "recipes/tools.ts");

  before(() => {
    const r = crecipe(work, ["-o", out, recipe, "appImage", ...(dockerUp ? ["app.rundocker"] : []), ...(runcProblem ? [] : ["app.runrunc"])]);
    assert.equal(r.status, 0, r.stderr);
  });

  it("the app's tree has no shell, and the build step's result is in it", () => {
    assert.deepEqual(fs.readdirSync(path.join(out, "app/bin")), ["hello"]);
    const digest = createHash("sha256").update(fs.readFileSync(path.join(out, "app/bin/hello"))).digest("hex");
    assert.equal(fs.readFileSync(path.join(out, "app/etc/hello.sha256"), "utf8"), `${digest}  bin/hello\n`);
  });

  it("the layer carries an empty /.tools and no busybox", () => {
    const names = spawnSync("tar", ["-tf", path.join(out, "app.layer")], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
    assert.ok(names.includes(".tools/"));
    assert.deepEqual(names.filter((n) => n.startsWith(".tools/") && n !== ".tools/"), []);
    assert.ok(!names.some((n) => /busybox|bin\/sh$/.test(n)), names.join(" "));
  });

  it("the image runs in Docker", { skip: dockerUp ? false : "no Docker daemon (run the tests through npm test)" }, () => {
    assert.equal(fs.readFileSync(path.join(out, "app.rundocker"), "utf8"), "Hello, world!\n");
  });

  it("the image runs in runc", { skip: runcProblem ? `runc: ${runcProblem.why}` : false }, () => {
    assert.equal(fs.readFileSync(path.join(out, "app.runrunc"), "utf8"), "Hello, world!\n");
  });
});
