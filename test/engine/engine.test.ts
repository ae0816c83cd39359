/** The engine as a user meets it: real crecipe processes on a small recipe. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { calls, crecipe, processGone, crecipeAsync, modUrl, read, resetCalls, tempDir, waitFor, write } from "../helpers.ts";

/** A chain and a fan: input.txt → src → {up, len}; other stands alone. */
function chainRecipe(extra = "", upBody = `text.toUpperCase()`): string {
  return `
import { file, here, $ } from ${JSON.stringify(modUrl)};
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
const called = (name: string) => appendFileSync(here("calls.log"), name + "\\n");
export const src = file("src.txt", async (out, ctx) => {
  called("src");
  writeFileSync(out, (await ctx.read(here("input.txt"))).toString().trim());
});
export const up = file("up.txt", async (out, ctx) => {
  called("up");
  const text = readFileSync(await ctx.need(src), "utf8");
  writeFileSync(out, ${upBody});
});
export const len = file("len.txt", async (out, ctx) => {
  called("len");
  writeFileSync(out, String(readFileSync(await ctx.need(src), "utf8").length));
});
export const other = file("other.txt", async (out) => {
  called("other");
  writeFileSync(out, "other");
});
${extra}
export default [up, len, other];
`;
}

function project(recipe = chainRecipe()): string {
  const dir = tempDir();
  write(dir, "input.txt", "hello\n");
  write(dir, "r.ts", recipe);
  return dir;
}

function ok(r: ReturnType<typeof crecipe>) {
  assert.equal(r.status, 0, `crecipe failed:\n${r.err}`);
  return r;
}

describe("incremental builds", () => {
  const dir = project();

  it("first build runs every builder once and writes the outputs", () => {
    const r = ok(crecipe(dir, ["r.ts"]));
    assert.deepEqual(calls(dir).sort(), ["len", "other", "src", "up"]);
    assert.equal(read(dir, "out/up.txt"), "HELLO");
    assert.equal(read(dir, "out/len.txt"), "5");
    assert.match(r.err, /crecipe +up\.txt/);
    assert.match(r.err, /4 built, 0 up to date/);
  });

  it("a no-op runs no builder", () => {
    resetCalls(dir);
    const r = ok(crecipe(dir, ["r.ts"]));
    assert.deepEqual(calls(dir), []);
    assert.match(r.err, /0 built, 4 up to date/);
  });

  it("editing one builder rebuilds only it", () => {
    resetCalls(dir);
    write(dir, "r.ts", chainRecipe("", "text.toUpperCase() + '!'"));
    ok(crecipe(dir, ["r.ts"]));
    assert.deepEqual(calls(dir), ["up"]);
    assert.equal(read(dir, "out/up.txt"), "HELLO!");
  });

  it("a host file's content change rebuilds its dependents; a touch does not", () => {
    resetCalls(dir);
    const now = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(dir, "input.txt"), now, now);
    ok(crecipe(dir, ["r.ts"]));
    assert.deepEqual(calls(dir), [], "same content, new mtime: nothing rebuilds");
    write(dir, "input.txt", "hi\n");
    ok(crecipe(dir, ["r.ts"]));
    assert.deepEqual(calls(dir).sort(), ["len", "src", "up"]);
    assert.equal(read(dir, "out/len.txt"), "2");
  });

  it("early cutoff: an upstream rebuild with identical output stops there", () => {
    resetCalls(dir);
    write(dir, "input.txt", "hi\n\n   \n"); // trimmed: the same src.txt
    const r = ok(crecipe(dir, ["r.ts"]));
    assert.deepEqual(calls(dir), ["src"]);
    assert.match(r.err, /1 built, 3 up to date/);
  });

  it("an output modified by hand is reported and rebuilt", () => {
    resetCalls(dir);
    write(dir, "out/up.txt", "tampered");
    const r = ok(crecipe(dir, ["r.ts"]));
    assert.match(r.err, /out\/up\.txt was modified outside crecipe; rebuilding it/);
    assert.deepEqual(calls(dir), ["up"]);
    assert.equal(read(dir, "out/up.txt"), "HI!");
  });

  it("-n says what would rebuild and why, building nothing", () => {
    resetCalls(dir);
    write(dir, "input.txt", "abc");
    const r = ok(crecipe(dir, ["r.ts", "-n"]));
    assert.match(r.out, /would rebuild src\.txt: host file .*input\.txt changed/);
    assert.match(r.out, /may rebuild +up\.txt: src\.txt would rebuild/);
    assert.deepEqual(calls(dir), []);
    const why = ok(crecipe(dir, ["r.ts", "--why", "other.txt"]));
    assert.equal(why.out.trim(), "other.txt: up to date");
  });

  it("a corrupt or truncated state file is a warning and a rebuild", () => {
    ok(crecipe(dir, ["r.ts"]));
    resetCalls(dir);
    const state = path.join(dir, "out/.crecipe/state/other.txt.json");
    fs.writeFileSync(state, fs.readFileSync(state, "utf8").slice(0, 40));
    write(dir, "out/.crecipe/state/len.txt.json", "\u0000\u0001garbage");
    const r = ok(crecipe(dir, ["r.ts"]));
    assert.match(r.err, /warning: state of other\.txt is unreadable/);
    assert.match(r.err, /warning: state of len\.txt is unreadable/);
    assert.deepEqual(calls(dir).sort(), ["len", "other"]);
  });
});

describe("the no-op fast path", () => {
  it("never hides a change made between two runs: a rebuild for other targets, an edited output, a deleted state", () => {
    const dir = project();
    ok(crecipe(dir, ["r.ts"]));
    ok(crecipe(dir, ["r.ts"])); // the second run writes the summary the third one uses
    resetCalls(dir);
    assert.match(ok(crecipe(dir, ["r.ts"])).err, /0 built, 4 up to date/);
    assert.deepEqual(calls(dir), []);
    // Another invocation, with other targets, rebuilds src: the default set must see it.
    write(dir, "input.txt", "changed\n");
    ok(crecipe(dir, ["r.ts", "src.txt"]));
    resetCalls(dir);
    ok(crecipe(dir, ["r.ts"]));
    assert.deepEqual(calls(dir).sort(), ["len", "up"]);
    // An output edited by hand, and a state removed.
    write(dir, "out/other.txt", "tampered");
    fs.rmSync(path.join(dir, "out/.crecipe/state/len.txt.json"));
    resetCalls(dir);
    ok(crecipe(dir, ["r.ts"]));
    assert.deepEqual(calls(dir).sort(), ["len", "other"]);
    assert.equal(read(dir, "out/other.txt"), "other");
  });
});

describe("failures", () => {
  it("a failing builder keeps the previous output, prints one block, and the next run retries", () => {
    const recipe = (command: string) => `
import { file, here, $ } from ${JSON.stringify(modUrl)};
import { appendFileSync, writeFileSync } from "node:fs";
export const t = file("t.txt", async (out) => {
  appendFileSync(here("calls.log"), "t\\n");
  writeFileSync(out, "partial");
  await $\`${command}\`;
  writeFileSync(out, "good");
});
export default t;`;
    const dir = project(recipe("true"));
    ok(crecipe(dir, ["r.ts"]));
    assert.equal(read(dir, "out/t.txt"), "good");
    write(dir, "r.ts", recipe("sh -c 'echo something broke >&2; exit 3'"));
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 1);
    assert.match(r.err, /FAILED t\.txt: command failed with exit code 3/);
    assert.match(r.err, /command: +sh -c 'echo something broke >&2; exit 3'/);
    assert.match(r.err, /exit code: 3/);
    assert.match(r.err, /\| something broke/);
    assert.match(r.err, /log: +out\/\.crecipe\/log\/t\.txt\.log/);
    assert.equal(read(dir, "out/t.txt"), "good", "the old output stays");
    assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/lock")), []);
    resetCalls(dir);
    assert.equal(crecipe(dir, ["r.ts"]).status, 1);
    assert.deepEqual(calls(dir), ["t"], "a failed target is retried");
  });

  it("Ctrl-C kills the children, leaves no partial output, temp or lock", async () => {
    const dir = project(`
import { file, here, $ } from ${JSON.stringify(modUrl)};
import { writeFileSync } from "node:fs";
export const slow = file("slow.txt", async (out) => {
  writeFileSync(out, "partial");
  await $\`sh -c 'echo $$ > ${"${here(\"child.pid\")}"}; exec sleep 60'\`;
});
export default slow;`);
    const { child, done } = crecipeAsync(dir, ["r.ts"]);
    await waitFor(() => fs.existsSync(path.join(dir, "child.pid")) && read(dir, "child.pid").trim() !== "");
    const sleeper = Number(read(dir, "child.pid"));
    child.kill("SIGINT");
    const result = await done;
    assert.equal(result.code, 130, result.err);
    assert.match(result.err, /interrupted by SIGINT/);
    assert.equal(fs.existsSync(path.join(dir, "out/slow.txt")), false);
    assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/lock")), []);
    assert.deepEqual(fs.readdirSync(path.join(dir, "out/.crecipe/tmp")), []);
    assert.ok(processGone(sleeper), "the child sleep was killed");
  });

  it("a lock left by a killed process (kill -9) does not block the next run", async () => {
    const dir = project(`
import { file, here } from ${JSON.stringify(modUrl)};
import { existsSync, writeFileSync } from "node:fs";
export const t = file("t.txt", async (out) => {
  writeFileSync(here("started"), "");
  if (!existsSync(here("fast"))) await new Promise((r) => setTimeout(r, 60000));
  writeFileSync(out, "done");
});
export default t;`);
    const { child, done } = crecipeAsync(dir, ["r.ts"]);
    await waitFor(() => fs.existsSync(path.join(dir, "started")));
    child.kill("SIGKILL");
    await done;
    assert.equal(fs.readdirSync(path.join(dir, "out/.crecipe/lock")).length, 1, "the dead holder's lock is still there");
    write(dir, "fast", "");
    ok(crecipe(dir, ["r.ts"]));
    assert.equal(read(dir, "out/t.txt"), "done");
  });

  it("a dependency cycle is an error that prints the cycle", () => {
    const dir = project(`
import { file } from ${JSON.stringify(modUrl)};
import { writeFileSync } from "node:fs";
export const a: any = file("a", async (out, ctx) => { await ctx.need(b); writeFileSync(out, "a"); });
export const b: any = file("b", async (out, ctx) => { await ctx.need(a); writeFileSync(out, "b"); });
export default a;`);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 1);
    assert.match(r.err, /dependency cycle: a → b → a/);
  });

  it("a name declared twice with different builders names both places", () => {
    const dir = project(`
import { file } from ${JSON.stringify(modUrl)};
import { writeFileSync } from "node:fs";
export const one = file("x", async (out) => writeFileSync(out, "1"));
export const two = file("x", async (out) => writeFileSync(out, "2"));
export default one;`);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 2);
    assert.match(r.err, /target "x" is declared twice/);
    assert.match(r.err, /first at +r\.ts:4:\d+/);
    assert.match(r.err, /then at +r\.ts:5:\d+/);
  });

  it("need() of a target that only returns a value names ctx.result() as the fix", () => {
    const dir = project(`
import { file, target } from ${JSON.stringify(modUrl)};
import { writeFileSync } from "node:fs";
export const v = target("v", async () => 42);
export const f = file("f", async (out, ctx) => { writeFileSync(out, String(await ctx.need(v))); });
export const g = file("g", async (out, ctx) => { writeFileSync(out, String((await ctx.result(v)).value)); });
export default f;`);
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 1);
    assert.match(r.err, /FAILED f: v has no output file, only a value: read it with \(await ctx\.result\(v\)\)\.value/);
    ok(crecipe(dir, ["r.ts", "g"]));
    assert.equal(read(dir, "out/g"), "42");
  });

  it("need(), needAll() and result() take a declared name as they take the target", () => {
    const dir = project(`
import { file, target } from ${JSON.stringify(modUrl)};
import { readFileSync, writeFileSync } from "node:fs";
export const src = file("src.txt", async (out) => writeFileSync(out, "from src"));
export const v = target("v", async () => 42);
export const f = file("f", async (out, ctx) => {
  const [again] = await ctx.needAll(["src.txt"]);
  writeFileSync(out, readFileSync(await ctx.need("src.txt"), "utf8") + " " + (await ctx.result("v")).value + " " + (again === ctx.finalPath.replace(/f$/, "src.txt")));
});
export const bad = file("bad", async (out, ctx) => { await ctx.need("srcc.txt"); });
export default f;`);
    ok(crecipe(dir, ["r.ts"]));
    assert.equal(read(dir, "out/f"), "from src 42 true");
    const r = crecipe(dir, ["r.ts", "bad"]);
    assert.equal(r.status, 1);
    assert.match(r.err, /FAILED bad: no target "srcc\.txt"; did you mean "src\.txt"\?/);
  });
});

describe("parallel and concurrent", () => {
  const fan = `
import { file, here } from ${JSON.stringify(modUrl)};
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
const leaves = Array.from({ length: 12 }, (_, i) => file(\`leaf\${i}\`, async (out) => {
  appendFileSync(here("calls.log"), \`leaf\${i}\\n\`);
  await new Promise((r) => setTimeout(r, 30 + ((i * 37) % 50)));
  writeFileSync(out, \`leaf \${i}\\n\`);
}));
export const all = file("all.txt", async (out, ctx) => {
  const paths = await ctx.needAll(leaves);
  writeFileSync(out, paths.map((p) => readFileSync(p, "utf8")).join(""));
});
export default all;`;

  it("-j 4 gives the same outputs as -j 1", () => {
    const one = project(fan);
    const four = project(fan);
    ok(crecipe(one, ["r.ts", "-j", "1"]));
    ok(crecipe(four, ["r.ts", "-j", "4"]));
    const files = (d: string) => fs.readdirSync(path.join(d, "out")).filter((f) => !f.startsWith(".")).sort();
    assert.deepEqual(files(one), files(four));
    for (const f of files(one)) assert.equal(read(four, `out/${f}`), read(one, `out/${f}`));
    assert.equal(read(one, "out/all.txt").split("\n").length, 13);
  });

  it("two processes building the same target: both succeed, the builder runs once", async () => {
    const dir = project(`
import { file, here } from ${JSON.stringify(modUrl)};
import { appendFileSync, writeFileSync } from "node:fs";
export const t = file("t.txt", async (out) => {
  appendFileSync(here("calls.log"), "t\\n");
  await new Promise((r) => setTimeout(r, 1500));
  writeFileSync(out, "built once");
});
export default t;`);
    const a = crecipeAsync(dir, ["r.ts"]);
    const b = crecipeAsync(dir, ["r.ts"]);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.code, 0, ra.err);
    assert.equal(rb.code, 0, rb.err);
    assert.deepEqual(calls(dir), ["t"]);
    assert.equal(read(dir, "out/t.txt"), "built once");
    assert.match(ra.err + rb.err, /being built by another crecipe/);
  });
});
