/**
 * Every failure a user can cause prints one readable block (the target, what failed, the
 * command and how it ended, the log's last lines, a fix), never a stack trace unless -v,
 * and exits with the documented code: 0 ok, 1 a target failed, 2 bad usage or a recipe
 * error. Tests that need an unprivileged user run as crecipe-test.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { crecipe, crecipeAsync, modUrl, tempDir, waitFor, write, hasTestUser, crecipeAsTestUser } from "../helpers.ts";

const needsTestUser = { skip: hasTestUser ? false : "needs root and the crecipe-test user" };

/** `crecipe ARGS` in `cwd` as the unprivileged user crecipe-test. */
function asTestUser(cwd: string, args: string[]) {
  const r = crecipeAsTestUser(cwd, args);
  return Object.assign(r, { out: r.stdout, err: r.stderr });
}

/** A temp dir the test user can read (and write, with `writable`). */
function sharedDir(writable = false): string {
  const dir = tempDir();
  fs.chmodSync(dir, writable ? 0o777 : 0o755);
  return dir;
}

/** A stack frame, as Node prints them: "    at fn (/file.js:1:2)". */
const STACK = /^\s+at .*:\d+:\d+\)?$/m;

const mod = JSON.stringify(modUrl);

describe("errors a user can cause", () => {
  it("a recipe that throws while it loads: one block naming the file and the line, exit 2, a stack only with -v", () => {
    const dir = tempDir();
    write(dir, "boom.ts", `import { file } from ${mod};\nexport const a = file("a", () => {});\nthrow new Error("boom");\n`);
    write(dir, "typo.ts", `import { file } from ${mod};\nconst settings: any = undefined;\n\nexport const b = file("b", () => {}, { options: settings.verbose });\n`);
    const boom = crecipe(dir, ["boom.ts"]);
    assert.equal(boom.status, 2, boom.err);
    assert.match(boom.err, /^crecipe: error: boom\.ts failed while loading: Error: boom$/m);
    assert.match(boom.err, /^ {2}at: +boom\.ts:3:\d+$/m);
    assert.match(boom.err, /^ {2}fix: /m);
    assert.doesNotMatch(boom.err, STACK);
    const typo = crecipe(dir, ["typo.ts"]);
    assert.equal(typo.status, 2, typo.err);
    assert.match(typo.err, /TypeError: Cannot read properties of undefined \(reading 'verbose'\)/);
    assert.match(typo.err, /^ {2}at: +typo\.ts:4:\d+$/m);
    assert.doesNotMatch(typo.err, STACK);
    const verbose = crecipe(dir, ["-v", "boom.ts"]);
    assert.equal(verbose.status, 2);
    assert.match(verbose.err, STACK, "-v shows the stack");
  });

  it("a missing recipe, or a directory given as the recipe: one line each, exit 2", () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, "recipes"));
    const missing = crecipe(dir, ["nope.ts"]);
    assert.equal(missing.status, 2);
    assert.equal(missing.err, "crecipe: error: no recipe nope.ts: no such file\n");
    const directory = crecipe(dir, ["recipes"]);
    assert.equal(directory.status, 2);
    assert.equal(directory.err, "crecipe: error: recipes is a directory, not a recipe: name a .ts file\n");
  });

  it("an out dir the user cannot write: one block naming it and the fix, exit 1; a no-op still works", needsTestUser, () => {
    const dir = sharedDir();
    const recipe = (text: string) => `
import { file } from ${mod};
import { writeFileSync } from "node:fs";
export const a = file("a.txt", (out) => writeFileSync(out, "${text}"));
export default a;
`;
    write(dir, "r.ts", recipe("one"));
    assert.equal(crecipe(dir, ["r.ts"]).status, 0, "root builds out/");
    const noop = asTestUser(dir, ["r.ts"]);
    assert.equal(noop.status, 0, noop.err);
    // A touched output: the no-op finds the same content and would store the new signature: it cannot, and need not.
    fs.utimesSync(path.join(dir, "out/a.txt"), new Date(), new Date(Date.now() + 5000));
    const touched = asTestUser(dir, ["r.ts"]);
    assert.equal(touched.status, 0, touched.err);
    assert.match(touched.err, /0 built, 1 up to date/);

    write(dir, "r.ts", recipe("two"));
    const rebuild = asTestUser(dir, ["r.ts"]);
    assert.equal(rebuild.status, 1, rebuild.err);
    assert.match(rebuild.err, new RegExp(`cannot write to the out dir ${dir}/out: permission denied`));
    assert.match(rebuild.err, /fix: +choose another out dir with -o DIR, or fix its permissions so that user crecipe-test can write in it/);
    assert.doesNotMatch(rebuild.err, STACK);

    fs.mkdirSync(path.join(dir, "root-only"));
    const fresh = asTestUser(dir, ["-o", "root-only/out", "r.ts"]);
    assert.equal(fresh.status, 1, fresh.err);
    assert.match(fresh.err, new RegExp(`^crecipe: error: cannot write to the out dir ${dir}/root-only/out: permission denied`, "m"));
    assert.doesNotMatch(fresh.err, STACK);

    const xclean = asTestUser(dir, ["--xclean"]);
    assert.equal(xclean.status, 1, xclean.err);
    assert.match(xclean.err, /cannot write to the out dir .*\/out: permission denied/);
    assert.doesNotMatch(xclean.err, STACK);
  });

  it("a target name too long for the file system is refused when it is declared, with the limit", () => {
    const dir = tempDir();
    // At the limit, a tree output's manifest (NAME.<16 hex>.list) is exactly 255 bytes.
    const longest = "t".repeat(233);
    write(dir, "ok.ts", `import { target } from ${mod};\nimport { mkdirSync } from "node:fs";\nexport default target(${JSON.stringify(longest)}, (ctx) => mkdirSync(ctx.out));\n`);
    const ok = crecipe(dir, ["ok.ts"]);
    assert.equal(ok.status, 0, ok.err);
    write(dir, "long.ts", `import { file } from ${mod};\nimport { writeFileSync } from "node:fs";\nexport default file(${JSON.stringify("x".repeat(234))}, (out) => writeFileSync(out, ""));\n`);
    const long = crecipe(dir, ["long.ts"]);
    assert.equal(long.status, 2, long.err);
    assert.match(long.err, /target name "x+…" is too long: 234 bytes, at most 233/);
    assert.match(long.err, /at: +long\.ts:3:\d+/);
    assert.ok(!fs.existsSync(path.join(dir, "out/.crecipe/state", "x".repeat(234) + ".json")));
  });

  it("a value JSON cannot store as it is is refused, naming the target, the kind and where", () => {
    const dir = tempDir();
    write(dir, "r.ts", `
import { target, value } from ${mod};
const loop: any = { a: 1 };
loop.self = loop;
export const circular = value("circular", () => ({ list: [1, loop] }));
export const bigint = value("bigint", () => ({ n: 10n }));
export const symbol = value("symbol", () => ({ s: Symbol("s") }));
export const map = value("map", () => new Map([[1, 2]]));
export const set = value("set", () => ({ deep: { set: new Set([1]) } }));
export const fn = value("fn", () => ({ run() {} }));
export const hole = value("hole", () => [1, undefined]);
export const nan = value("nan", () => ({ ratio: NaN }));
export const infinity = value("infinity", () => [Infinity]);
export const plain = value("plain", () => ({ a: [1, "x", null, { b: true }], dropped: undefined }));
`);
    const refused: [string, RegExp][] = [
      ["circular", /value\.list\[1\]\.self is a circular reference/],
      ["bigint", /value\.n is a BigInt/],
      ["symbol", /value\.s is a Symbol/],
      ["map", /value is a Map/],
      ["set", /value\.deep\.set is a Set/],
      ["fn", /value\.run is a function/],
      ["hole", /value\[1\] is undefined/],
      ["nan", /value\.ratio is NaN/],
      ["infinity", /value\[0\] is Infinity/],
    ];
    for (const [name, where] of refused) {
      const r = crecipe(dir, ["r.ts", name]);
      assert.equal(r.status, 1, `${name}: ${r.err}`);
      assert.match(r.err, new RegExp(`^crecipe: FAILED ${name}: the value it returned cannot be stored as JSON: `, "m"));
      assert.match(r.err, where);
      assert.match(r.err, /^ {2}fix: /m);
      assert.doesNotMatch(r.err, STACK);
      assert.ok(!fs.existsSync(path.join(dir, `out/.crecipe/state/${name}.json`)), `${name}: nothing stored`);
    }
    const plain = crecipe(dir, ["r.ts", "plain"]);
    assert.equal(plain.status, 0, plain.err);
    const stored = JSON.parse(fs.readFileSync(path.join(dir, "out/.crecipe/state/plain.json"), "utf8"));
    assert.deepEqual(stored.value, { a: [1, "x", null, { b: true }] });
  });

  it("options are hashed by what they hold (functions by text, Maps by entries); circular options are refused", () => {
    const dir = tempDir();
    write(dir, "r.ts", `
import { target } from ${mod};
const limit = Number(process.env.LIMIT);
export default target("t", () => 1, { options: { check: (n: number) => n > 0, limits: new Map([["files", limit]]), big: 10n } });
`);
    assert.equal(crecipe(dir, ["r.ts"], { LIMIT: "1" }).status, 0);
    assert.match(crecipe(dir, ["r.ts"], { LIMIT: "1" }).err, /0 built, 1 up to date/);
    const changed = crecipe(dir, ["r.ts"], { LIMIT: "2" });
    assert.match(changed.err, /1 built/, "a changed Map in the options rebuilds");
    write(dir, "loop.ts", `
import { target } from ${mod};
const loop: any = {};
loop.self = loop;
export default target("loop", () => 1, { options: { loop } });
`);
    const loop = crecipe(dir, ["loop.ts"]);
    assert.equal(loop.status, 2, loop.err);
    assert.match(loop.err, /the options of target loop cannot be hashed: options\.loop\.self is a circular reference/);
    assert.doesNotMatch(loop.err, STACK);
  });

  it("state and summary files of the wrong shape: a warning and a rebuild, never a crash", () => {
    const dir = tempDir();
    write(dir, "r.ts", `
import { file } from ${mod};
import { writeFileSync } from "node:fs";
export const a = file("a", (out) => writeFileSync(out, "a"));
export const b = file("b", async (out, ctx) => writeFileSync(out, "b" + (await ctx.need(a))));
export default b;
`);
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    const stateFile = path.join(dir, "out/.crecipe/state/b.json");
    const good = JSON.parse(fs.readFileSync(stateFile, "utf8"));
    const shapes: [string, unknown][] = [
      ["deps\\[0\\] is neither a target nor a host file", { ...good, deps: [null] }],
      ["deps\\[0\\] is neither a target nor a host file", { ...good, deps: [{ file: null, hash: null, sig: "x" }] }],
      ["deps\\[0\\] is neither a target nor a host file", { ...good, deps: [{ target: 5, stamp: "x" }] }],
      ["deps is not a list", { ...good, deps: {} }],
      ["output is not file, dir, symlink or none", { ...good, output: "tape" }],
      ["manifest is not a file name", { ...good, manifest: "../../etc/passwd" }],
      ["identity is not a string", { v: 2, identity: 1 }],
      ["not a JSON object", null],
      ["not a JSON object", [1, 2]],
    ];
    for (const [problem, shape] of shapes) {
      fs.writeFileSync(stateFile, JSON.stringify(shape));
      const r = crecipe(dir, ["r.ts"]);
      assert.equal(r.status, 0, `${JSON.stringify(shape)}: ${r.err}`);
      assert.doesNotMatch(r.err, STACK);
      assert.match(r.err, /1 built, 1 up to date/, "b is rebuilt");
      assert.match(r.err, new RegExp(`warning: state of b is unreadable \\(${problem}\\); rebuilding it`));
    }
    // The no-op summary, of the wrong shape (its state-directory time still matches).
    const summaryDir = path.join(dir, "out/.crecipe/summary");
    const [summaryFile] = fs.readdirSync(summaryDir).map((f) => path.join(summaryDir, f));
    const summary = JSON.parse(fs.readFileSync(summaryFile, "utf8"));
    for (const targets of [{ a: null }, { a: { identity: "x" } }, null]) {
      fs.writeFileSync(summaryFile, JSON.stringify({ ...summary, targets }));
      const r = crecipe(dir, ["r.ts"]);
      assert.equal(r.status, 0, r.err);
      assert.match(r.err, /0 built, 2 up to date/);
    }
  });

  it("a command killed by a signal: the block names the command and the signal", async () => {
    const dir = tempDir();
    write(dir, "r.ts", `import { $, file } from ${mod};\nexport default file("k", async () => { await $\`sleep 600\`; });\n`);
    const { child, done } = crecipeAsync(dir, ["r.ts"]);
    let sleeper: number | undefined;
    await waitFor(() => (sleeper = descendants(child.pid!).find((pid) => command(pid) === "sleep\u0000600\u0000")) !== undefined);
    process.kill(sleeper!, "SIGKILL");
    const r = await done;
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /^crecipe: FAILED k: command killed by SIGKILL$/m);
    assert.match(r.err, /^ {2}command: +sleep 600$/m);
    assert.doesNotMatch(r.err, /exit code/);
  });

  it("a file the building user cannot read: the block blames the target that read it, names the file and the fix", needsTestUser, () => {
    const dir = sharedDir(true);
    const secret = write(dir, "secret.txt", "s\n");
    write(dir, "r.ts", `
import { file, fs, layer } from ${mod};
import { writeFileSync } from "node:fs";
export const reader = file("reader", async (out, ctx) => writeFileSync(out, await ctx.read(${JSON.stringify(secret)})));
export const user = file("user", async (out, ctx) => writeFileSync(out, "uses " + (await ctx.need(reader))));
export const shadow = fs("shadow", async (root) => { await root.copyIn("/etc/shadow", "/etc/"); });
export const shadowLayer = layer(shadow);
`);
    const readable = asTestUser(dir, ["r.ts", "user"]);
    assert.equal(readable.status, 0, readable.err);
    fs.chmodSync(secret, 0o000);
    fs.writeFileSync(secret, "changed\n");
    for (const clean of [false, true]) {
      // After a build that read it, and in an out dir that never did.
      if (clean) fs.rmSync(path.join(dir, "out"), { recursive: true });
      const r = asTestUser(dir, ["r.ts", "user"]);
      assert.equal(r.status, 1, r.err);
      assert.match(r.err, new RegExp(`^crecipe: FAILED reader: permission denied: cannot open ${secret}$`, "m"));
      assert.match(r.err, new RegExp(`^ {2}fix: +user crecipe-test may not open ${secret}: change its permissions, or run crecipe as a user who may$`, "m"));
      assert.doesNotMatch(r.err, /FAILED user/);
      assert.doesNotMatch(r.err, STACK);
    }
    const shadow = asTestUser(dir, ["r.ts", "shadow.layer"]);
    assert.equal(shadow.status, 1, shadow.err);
    assert.match(shadow.err, /^crecipe: FAILED shadow: permission denied: cannot open \/etc\/shadow$/m);
    assert.match(shadow.err, /^ {2}fix: +user crecipe-test may not open \/etc\/shadow/m);
    assert.doesNotMatch(shadow.err, STACK);
  });

  /** r.ts: the fs "locked", whose builder makes /secret/deeper/f, leaves /secret mode 000, then runs `rest`. */
  const lockedRecipe = (dir: string, rest = "") => write(dir, "r.ts", `
import { fs } from ${mod};
import { chmodSync, existsSync } from "node:fs";
export const locked = fs("locked", async (root) => {
  await root.mkdir("/secret/deeper");
  await root.write("/secret/deeper/f", "x");
  chmodSync(root.path("/secret"), 0o000);
${rest}});
export default locked;
`);
  const tempsLeft = (dir: string) => {
    const tmp = path.join(dir, "out/.crecipe/tmp");
    return fs.existsSync(tmp) ? fs.readdirSync(tmp) : [];
  };

  it("a builder that leaves a mode-000 directory and fails: its temp dir goes, and the next build works", needsTestUser, () => {
    const dir = sharedDir(true);
    lockedRecipe(dir, `  if (!existsSync(${JSON.stringify(path.join(dir, "ok"))})) throw new Error("not yet");
  chmodSync(root.path("/secret"), 0o755);
`);
    const first = asTestUser(dir, ["r.ts"]);
    assert.equal(first.status, 1, first.err);
    assert.match(first.err, /FAILED locked: not yet/);
    assert.doesNotMatch(first.err, STACK);
    assert.deepEqual(tempsLeft(dir), [], "the failed build removed its temp dir");
    const again = asTestUser(dir, ["r.ts"]);
    assert.equal(again.status, 1, again.err);
    assert.doesNotMatch(again.err, STACK);
    write(dir, "ok", "");
    const done = asTestUser(dir, ["r.ts"]);
    assert.equal(done.status, 0, done.err);
    assert.ok(fs.existsSync(path.join(dir, "out/locked/secret/deeper/f")));
  });

  it("a builder that leaves a mode-000 directory and succeeds: the block names the path in the tree, not the temp dir, and the fix", needsTestUser, () => {
    const dir = sharedDir(true);
    lockedRecipe(dir);
    const r = asTestUser(dir, ["r.ts"]);
    assert.equal(r.status, 1, r.err);
    assert.match(r.err, /^crecipe: FAILED locked: cannot read \/secret in the tree its builder made \(permission denied\)/m);
    assert.match(r.err, /fix: +leave \/secret readable: chmod it \(root\.chmod\("\/secret", 0o755\)/);
    assert.doesNotMatch(r.err, /\.crecipe\/tmp/);
    assert.doesNotMatch(r.err, STACK);
    assert.deepEqual(tempsLeft(dir), [], "the failed build removed its temp dir");
    assert.ok(!fs.existsSync(path.join(dir, "out/locked")), "no tree was committed");
  });

  /** A dir with file("a") built once as the test user. */
  const builtAsTestUser = () => {
    const dir = sharedDir(true);
    write(dir, "r.ts", `
import { file } from ${mod};
import { writeFileSync } from "node:fs";
export default file("a", async (out) => writeFileSync(out, "a"));
`);
    assert.equal(asTestUser(dir, ["r.ts"]).status, 0);
    return dir;
  };
  /** The name of target a's temp dir in a build that died (its holder: a process that is gone). */
  const deadBuildsDir = () => {
    const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
    const pidns = fs.statSync("/proc/self/ns/pid").ino;
    const boot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").replaceAll("-", "").trim().slice(0, 12);
    return `a.${dead}-12345-${pidns}-${boot}.zzzzzz`;
  };

  it("a mode-000 directory left in a dead build's temp dir is swept by the next build", needsTestUser, () => {
    const dir = builtAsTestUser();
    // What a build killed by SIGKILL as it held a mode-000 directory leaves: its temp dir, named after it.
    const left = path.join(dir, "out/.crecipe/tmp", deadBuildsDir());
    fs.mkdirSync(path.join(left, "out/locked/inner"), { recursive: true });
    fs.writeFileSync(path.join(left, "out/locked/inner/f"), "x");
    spawnSync("chown", ["-R", "crecipe-test:crecipe-test", path.join(dir, "out/.crecipe/tmp")]);
    fs.chmodSync(path.join(left, "out/locked"), 0o000);
    fs.writeFileSync(path.join(dir, "r.ts"), fs.readFileSync(path.join(dir, "r.ts"), "utf8").replace('"a")', '"b")'));
    const r = asTestUser(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.err);
    assert.doesNotMatch(r.err, STACK);
    assert.ok(!fs.existsSync(left), "the dead build's temp dir is gone");
  });

  it("--clean sweeps what dead builds left in the temp and trash dirs, and keeps a live build's", needsTestUser, () => {
    const dir = builtAsTestUser();
    const state = path.join(dir, "out/.crecipe");
    const dead = [path.join(state, "tmp", deadBuildsDir()), path.join(state, "trash", deadBuildsDir())];
    for (const left of dead) write(left, "old/f", "x");
    // A build running now (this process holds it) keeps its own.
    const stat = fs.readFileSync("/proc/self/stat", "utf8");
    const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    const live = path.join(state, "trash", deadBuildsDir().replace(/^a\.\d+-12345-/, `a.${process.pid}-${start}-`));
    write(live, "old/f", "x");
    spawnSync("chown", ["-R", "crecipe-test:crecipe-test", path.join(state, "tmp"), path.join(state, "trash")]);
    const r = asTestUser(dir, ["r.ts", "--clean"]);
    assert.equal(r.status, 0, r.err);
    for (const left of dead) assert.ok(!fs.existsSync(left), `${left} is gone`);
    assert.ok(fs.existsSync(path.join(live, "old/f")), "the live build's is kept");
  });

  // A sweep that cannot remove a leftover (another user's files in it; or one a background rm
  // of .crecipe/trash is removing at the same time) leaves it: the build goes on.
  it("a dead build's leftover the user cannot remove does not stop the next build", needsTestUser, () => {
    const dir = builtAsTestUser();
    const left = path.join(dir, "out/.crecipe/trash", deadBuildsDir());
    fs.mkdirSync(path.join(left, "old/root-owned"), { recursive: true });
    fs.writeFileSync(path.join(left, "old/root-owned/f"), "x"); // root's, in a directory of root's
    spawnSync("chown", ["crecipe-test:crecipe-test", path.join(dir, "out/.crecipe/trash"), left]);
    fs.writeFileSync(path.join(dir, "r.ts"), fs.readFileSync(path.join(dir, "r.ts"), "utf8").replace('"a")', '"b")'));
    const r = asTestUser(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.err);
    assert.doesNotMatch(r.err, STACK);
    assert.equal(fs.readFileSync(path.join(dir, "out/a"), "utf8"), "b");
    assert.ok(fs.existsSync(path.join(left, "old/root-owned/f")), "what the user cannot remove is left as it was");
  });

  it("a source path longer than PATH_MAX: one block naming the target and the path, no stack", () => {
    const dir = tempDir();
    const long = "/" + Array.from({ length: 20 }, () => "d".repeat(250)).join("/") + "/f";
    write(dir, "r.ts", `
import { fs } from ${mod};
export default fs("t", async (root) => { await root.copyIn(${JSON.stringify(long)}, "/"); });
`);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 1, r.err);
    assert.match(r.err, /^crecipe: FAILED t: name too long: cannot lstat \/d{59}…d{38}\/f \(5022 bytes\)$/m);
    assert.match(r.err, /^ {2}fix: +Linux takes paths up to 4095 bytes/m);
    assert.doesNotMatch(r.err, STACK);
  });

  it("-o without a directory is a usage error; --xclean removes only a crecipe out dir", () => {
    const dir = tempDir();
    write(dir, "r.ts", `import { file } from ${mod};\nimport { writeFileSync } from "node:fs";\nexport default file("a", (out) => writeFileSync(out, "a"));\n`);
    write(dir, "notes/keep.txt", "mine\n");
    const bare = crecipe(dir, ["r.ts", "-o"]);
    assert.equal(bare.status, 2, bare.err);
    assert.match(bare.err, /^crecipe: error: -o wants a directory$/m);
    assert.ok(!fs.existsSync(path.join(dir, ".crecipe")), "nothing built into the current directory");
    for (const args of [["--xclean", "-o"], ["--xclean", "-o", "notes"], ["--xclean", "-o", "."]]) {
      const r = crecipe(dir, args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.err}`);
      assert.doesNotMatch(r.err, /removed/);
      assert.ok(fs.existsSync(path.join(dir, "notes/keep.txt")), `${args.join(" ")} removed nothing`);
    }
    assert.match(crecipe(dir, ["--xclean", "-o", "notes"]).err, /notes is not a crecipe out dir \(it has no \.crecipe\/\); not removing it/);
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    const xclean = crecipe(dir, ["--xclean"]);
    assert.equal(xclean.status, 0, xclean.err);
    assert.ok(!fs.existsSync(path.join(dir, "out")));
  });

  it("a script that builds with top-level await build() and exports nothing exits 0; one that does neither still errs", () => {
    const dir = tempDir();
    write(dir, "script.ts", `
import { build, file } from ${mod};
import { writeFileSync } from "node:fs";
const hello = file("hello", (out) => writeFileSync(out, "hi"));
const [result] = await build([hello]);
console.log("built", result.name);
`);
    for (const run of ["first", "no-op"]) {
      const r = crecipe(dir, ["script.ts"]);
      assert.equal(r.status, 0, `${run}: ${r.err}`);
      assert.equal(r.out, "built hello\n");
      assert.doesNotMatch(r.err, /no default export/);
    }
    write(dir, "idle.ts", `console.log("nothing to build");\n`);
    const idle = crecipe(dir, ["idle.ts"]);
    assert.equal(idle.status, 2);
    assert.match(idle.err, /idle\.ts has no default export/);
  });
});

/** Every process below `pid`, from /proc. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch { /* gone */ }
  }
  const found: number[] = [];
  for (let queue = [pid]; queue.length;) {
    for (const child of children.get(queue.shift()!) ?? []) found.push(child), queue.push(child);
  }
  return found;
}

function command(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}
