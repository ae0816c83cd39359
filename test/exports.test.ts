/**
 * The public surface is pinned (as zx's test/export.test.js does): lib/mod.ts, the recipe
 * author's API, lib/inspect.ts, the one for tools, and lib/net.ts, serve and fetch alone,
 * export exactly these names, under Node and under Deno. A change here is a change of the API: make it on purpose.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { repo } from "./helpers.ts";

const MOD = ["$", "BuildError", "CrecipeError", "CycleError", "FetchError", "NODE", "RegistryCache", "attach", "bootstrap", "build", "bundle", "chunks", "fetchChunked", "file", "files", "fs", "gz", "here", "image", "imageTar", "initrd", "layer", "list", "load", "packageLayers", "pull", "push", "run", "runtimeProblem", "sbom", "serve", "sha256", "target", "value", "zstd"];
const INSPECT = ["BuildError", "CommandError", "CrecipeError", "CycleError", "InterruptedError", "OutDirError", "buildsStarted", "chunkIndex", "clean", "currentContext", "declared", "decodeChunkIndex", "describeGraph", "EVENTS_VERSION", "TraceRecorder", "encodeChunkIndex", "explain", "fanOut", "formatBytes", "formatError", "jsonLines", "writeTrace", "formatFailure", "hostMirror", "isNode", "layout", "listTargets", "lookup", "memoryFor", "outDirFailure", "resolveTargets", "sourceDateEpoch", "thrownAt", "useSourceIndex"];
const NET = ["CrecipeError", "FetchError", "InterruptedError", "fetchChunked", "formatBytes", "formatError", "serve"];
const RUN = ["crun", "docker", "kvm", "local", "nspawn", "podman", "runc"];

it("lib/mod.ts, lib/inspect.ts and lib/net.ts export exactly the pinned names (Node)", async () => {
  const mod = await import("../lib/mod.ts");
  assert.deepEqual(Object.keys(mod).sort(), [...MOD].sort());
  assert.deepEqual(Object.keys(mod.run).sort(), RUN);
  assert.deepEqual(Object.keys(mod.load).sort(), ["docker"]);
  const inspect = await import("../lib/inspect.ts");
  assert.deepEqual(Object.keys(inspect).sort(), [...INSPECT].sort());
  const net = await import("../lib/net.ts");
  assert.deepEqual(Object.keys(net).sort(), [...NET].sort());
});

it("lib/mod.ts, lib/inspect.ts and lib/net.ts export the same names under Deno", () => {
  const deno = path.join(repo, "node_modules", ".bin", "deno");
  const script = `const m = await import(${JSON.stringify(path.join(repo, "lib/mod.ts"))}); const i = await import(${JSON.stringify(path.join(repo, "lib/inspect.ts"))}); const n = await import(${JSON.stringify(path.join(repo, "lib/net.ts"))});
console.log(JSON.stringify([Object.keys(m).sort(), Object.keys(i).sort(), Object.keys(n).sort()]));`;
  const r = spawnSync(deno, ["eval", `--config=${path.join(repo, "deno.json")}`, script], { cwd: repo, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [[...MOD].sort(), [...INSPECT].sort(), [...NET].sort()]);
});

it("deno doc --lint finds nothing missing in lib/mod.ts", () => {
  const deno = path.join(repo, "node_modules", ".bin", "deno");
  const r = spawnSync(deno, ["doc", "--lint", "lib/mod.ts"], { cwd: repo, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

it("package.json and deno.json name the same three entry points", () => {
  const read = (f: string) => JSON.parse(fs.readFileSync(path.join(repo, f), "utf8"));
  const expected = { ".": "./lib/mod.ts", "./inspect": "./lib/inspect.ts", "./net": "./lib/net.ts" };
  assert.deepEqual(read("package.json").exports, expected);
  assert.deepEqual(read("deno.json").exports, expected);
});
