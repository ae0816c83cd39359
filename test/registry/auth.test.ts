/**
 * A registry behind basic auth (htpasswd): no credentials and a wrong password are each
 * one block with a fix, never a stack trace; CRECIPE_REGISTRY_USER/PASSWORD push, and
 * docker's config file (`auths`, base64 user:password, as `docker login` writes) pulls.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { crecipeAsync, repo, tempDir, write } from "../helpers.ts";
import { type Loopback, skipRegistry, startRegistry } from "./loopback.ts";

const mod = JSON.stringify(path.join(repo, "lib/mod.ts"));
const simple = JSON.stringify(path.join(repo, "recipes/simple.ts"));
const crecipe = async (cwd: string, args: string[], env: Record<string, string>) => {
  const r = await crecipeAsync(cwd, args, env).done;
  return { status: r.code, stderr: r.err };
};

describe("a registry with basic auth", { skip: skipRegistry }, () => {
  let registry: Loopback;
  const work = tempDir();
  const out = path.join(work, "out");
  const dockerConfig = path.join(work, "docker");
  // No ~/.docker/config.json of the machine's, no credentials from the environment.
  const env = (extra: Record<string, string> = {}) => ({ DOCKER_CONFIG: dockerConfig, CRECIPE_REGISTRY_USER: "", CRECIPE_REGISTRY_PASSWORD: "", REF: `${registry.host}/private/simple:1`, ...extra });

  before(async () => {
    registry = await startRegistry({ user: "alice", password: "s3cret" });
    fs.mkdirSync(dockerConfig);
    write(work, "push.ts", `import { push } from ${mod};\nimport { simpleImage } from ${simple};\nexport default push(simpleImage, process.env.REF!);\n`);
    write(work, "pull.ts", `import { pull } from ${mod};\nexport default pull(process.env.REF!);\n`);
  });
  after(() => registry?.stop());

  const oneBlock = (stderr: string) => {
    assert.match(stderr, /^crecipe: FAILED simple\.push: the registry /m);
    assert.match(stderr, /^  fix: +.*(CRECIPE_REGISTRY_USER|docker login)/m);
    assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
  };

  it("without credentials: an error that says how to give them", async () => {
    const r = await crecipe(work, ["-o", out, path.join(work, "push.ts")], env());
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /wants credentials, and none are set/);
    oneBlock(r.stderr);
    assert.equal(registry.uploads(), 0);
  });

  it("a wrong password: an error naming the user and where the credentials came from", async () => {
    const r = await crecipe(work, ["-o", out, path.join(work, "push.ts")], env({ CRECIPE_REGISTRY_USER: "alice", CRECIPE_REGISTRY_PASSWORD: "wrong" }));
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /refused the credentials of user "alice" \(from CRECIPE_REGISTRY_USER/);
    oneBlock(r.stderr);
    assert.ok(!fs.existsSync(path.join(out, "simple.push")));
  });

  it("pushes with CRECIPE_REGISTRY_USER/PASSWORD, pulls with docker's config file", async () => {
    const pushed = await crecipe(work, ["-o", out, path.join(work, "push.ts")], env({ CRECIPE_REGISTRY_USER: "alice", CRECIPE_REGISTRY_PASSWORD: "s3cret" }));
    assert.equal(pushed.status, 0, pushed.stderr + JSON.stringify(registry.requests));
    assert.ok(registry.uploads() >= 3);
    fs.writeFileSync(path.join(dockerConfig, "config.json"), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from("alice:s3cret").toString("base64") } } }));
    const pulled = await crecipe(work, ["-o", path.join(work, "out2"), path.join(work, "pull.ts")], env());
    assert.equal(pulled.status, 0, pulled.stderr);
    assert.ok(fs.existsSync(path.join(work, "out2", "simple-1.pull", "index.json")));
  });
});
