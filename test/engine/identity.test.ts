/**
 * A target's identity covers what its builder reads from the recipe's own sources: a
 * module-level constant, function or object, a constant of a local module it imports.
 * A change there rebuilds it, `--why` names what changed, and an unrelated edit (another
 * target's builder, a comment) rebuilds nothing else. Node and Deno agree.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { describe, it } from "node:test";
import { calls, crecipe, modUrl, read, repo, resetCalls, tempDir, write } from "../helpers.ts";

const recipe = `import { file, here } from ${JSON.stringify(modUrl)};
import { appendFileSync, writeFileSync } from "node:fs";
import { SUFFIX } from "./consts.ts";
const called = (name: string) => appendFileSync(here("calls.log"), name + "\\n");
const GREETING = "hello";
function shout(s: string) { return s.toUpperCase(); }
const STYLE = { mark: "!" };

export const greet = file("greet", async (out) => {
  called("greet");
  writeFileSync(out, shout(GREETING) + STYLE.mark + SUFFIX);
});
export const other = file("other", async (out) => {
  called("other");
  writeFileSync(out, "other");
});
export default [greet, other];
`;

function project(): string {
  const dir = tempDir();
  write(dir, "r.ts", recipe);
  write(dir, "consts.ts", `export const SUFFIX = "."; // the end\nexport const UNUSED = 1;\n`);
  return dir;
}

function ok(r: ReturnType<typeof crecipe>) {
  assert.equal(r.status, 0, `crecipe failed:\n${r.err}`);
  return r;
}

/** Edit r.ts (or another file), check --why, build, and say which builders ran. */
function edit(dir: string, file: string, from: string | RegExp, to: string): { why: string; ran: string[] } {
  const text = read(dir, file);
  const next = text.replace(from, to);
  assert.notEqual(next, text, `${from} is not in ${file}`);
  write(dir, file, next);
  const why = ok(crecipe(dir, ["--why", "greet", "r.ts"])).out;
  resetCalls(dir);
  ok(crecipe(dir, ["r.ts"]));
  return { why, ran: calls(dir).sort() };
}

describe("what a builder reads from the recipe's sources", () => {
  const dir = project();

  it("first build", () => {
    ok(crecipe(dir, ["r.ts"]));
    assert.equal(read(dir, "out/greet"), "HELLO!.");
  });

  it("a module-level constant changed: the builder reruns, --why names it and its line", () => {
    const { why, ran } = edit(dir, "r.ts", `"hello"`, `"bye"`);
    assert.match(why, /greet: would rebuild: GREETING changed \(r\.ts:5\)/);
    assert.deepEqual(ran, ["greet"]);
    assert.equal(read(dir, "out/greet"), "BYE!.");
  });

  it("a module-level function changed", () => {
    const { why, ran } = edit(dir, "r.ts", "s.toUpperCase()", "s.toUpperCase().split('').reverse().join('')");
    assert.match(why, /shout changed \(r\.ts:6\)/);
    assert.deepEqual(ran, ["greet"]);
    assert.equal(read(dir, "out/greet"), "EYB!.");
  });

  it("an object literal changed", () => {
    const { why, ran } = edit(dir, "r.ts", `{ mark: "!" }`, `{ mark: "?" }`);
    assert.match(why, /STYLE changed \(r\.ts:7\)/);
    assert.deepEqual(ran, ["greet"]);
    assert.equal(read(dir, "out/greet"), "EYB?.");
  });

  it("a constant in an imported local module changed", () => {
    const { why, ran } = edit(dir, "consts.ts", `"."`, `"…"`);
    assert.match(why, /SUFFIX changed \(consts\.ts:1\)/);
    assert.deepEqual(ran, ["greet"]);
    assert.equal(read(dir, "out/greet"), "EYB?…");
  });

  it("unrelated edits rebuild nothing: another builder, a comment, an unused export, a blank line; a related one still does", () => {
    let r = edit(dir, "r.ts", `"other");\n});`, `"other!");\n});`);
    assert.deepEqual(r.ran, ["other"]);
    assert.match(r.why, /greet: up to date/);
    r = edit(dir, "r.ts", "const GREETING", "// a comment, and a blank line\n\nconst GREETING");
    assert.deepEqual(r.ran, []);
    r = edit(dir, "consts.ts", "the end", "the very end");
    assert.deepEqual(r.ran, []);
    r = edit(dir, "consts.ts", "UNUSED = 1", "UNUSED = 2");
    assert.deepEqual(r.ran, []);
    assert.match(r.why, /greet: up to date/);
    // …while an edit of what it reads still counts, after all those.
    r = edit(dir, "consts.ts", `"…"`, `"."`);
    assert.deepEqual(r.ran, ["greet"]);
  });

  it("a top-level let the builder reads is a warning", () => {
    write(dir, "let.ts", `import { file } from ${JSON.stringify(modUrl)};
import { writeFileSync } from "node:fs";
let count = 1;
export default file("count", async (out) => writeFileSync(out, String(count)));
`);
    const r = ok(crecipe(dir, ["let.ts"]));
    assert.match(r.err, /warning: count: its builder reads count \(let\.ts:3\), a top-level let: crecipe sees its declaration, not the value/);
  });
});

it("Deno and Node agree: a change seen by one is a no-op for the other", () => {
  const deno = path.join(repo, "node_modules", ".bin", "deno");
  const denoCrecipe = (cwd: string, args: string[]) =>
    spawnSync(deno, ["run", "-A", `--config=${path.join(repo, "deno.json")}`, path.join(repo, "bin", "crecipe.ts"), ...args], {
      cwd,
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1" },
    });
  const dir = project();
  ok(crecipe(dir, ["r.ts"]));
  write(dir, "consts.ts", `export const SUFFIX = ";";\n`);
  const d = denoCrecipe(dir, ["--why", "greet", "r.ts"]);
  assert.equal(d.status, 0, d.stderr);
  assert.match(d.stdout, /SUFFIX changed \(consts\.ts:1\)/);
  const built = denoCrecipe(dir, ["r.ts"]);
  assert.equal(built.status, 0, built.stderr);
  assert.match(built.stderr, /1 built, 1 up to date/);
  assert.match(ok(crecipe(dir, ["r.ts"])).err, /0 built, 2 up to date/);
  write(dir, "r.ts", read(dir, "r.ts").replace(`"hello"`, `"salut"`));
  assert.match(ok(crecipe(dir, ["r.ts"])).err, /1 built, 1 up to date/);
  const again = denoCrecipe(dir, ["r.ts"]);
  assert.match(again.stderr, /0 built, 2 up to date/);
  assert.equal(read(dir, "out/greet"), "SALUT!;");
});
