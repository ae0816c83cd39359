import assert from "node:assert/strict";
import { test } from "node:test";
import { FormatError, baseName, checkPath, comparePaths, escapePath, parentPath, unescapePath } from "../../lib/formats/entry.ts";
import { B, run } from "./tools.ts";

test("comparePaths is plain byte order, the same as sort under LC_ALL=C", () => {
  const names = ["b", "a/b", "a-b", "a", "A", "\xff", "a b", "a0", "\xc3\xa9", "~"];
  const ours = names.map(B).sort(comparePaths).map((b) => b.toString("latin1"));
  assert.deepEqual(ours, ["A", "a", "a b", "a-b", "a/b", "a0", "b", "~", "\xc3\xa9", "\xff"]);
  const sorted = run("sort", ["-z"], { input: B(names.join("\0") + "\0") }).toString("latin1").split("\0").slice(0, -1);
  assert.deepEqual(ours, sorted);
});

test("checkPath accepts clean relative paths", () => {
  for (const p of ["a", "a/b/c", "-rf", "a b", "x\ny", "\xff\xfe", "...", "..a", ".a", "a.wh.b", "wh.x"]) checkPath(B(p));
  checkPath(B("d/.wh.x"), { allowWhiteoutNames: true });
});

test("checkPath refuses, naming the path escaped", () => {
  const cases: [string, RegExp][] = [
    ["", /invalid path "": empty/],
    ["/etc", /"\/etc": absolute/],
    ["a/../b", /"a\/\.\.\/b": "\.\." component/],
    ["..", /"\.\." component/],
    ["./a", /"\." component/],
    ["a/.", /"\." component/],
    ["a//b", /empty component/],
    ["a/", /empty component/],
    ["a\0b", /"a\\x00b": contains a NUL/],
    ["x\n/.wh.y", /"x\\x0a\/\.wh\.y": component starts with "\.wh\."/],
    [".wh..wh..opq", /reserved for whiteouts/],
  ];
  for (const [p, message] of cases) assert.throws(() => checkPath(B(p)), (err: unknown) => err instanceof FormatError && message.test(err.message), JSON.stringify(p));
  assert.throws(() => checkPath(B("a/../.wh.b"), { allowWhiteoutNames: true }), /"\.\." component/);
});

test("escapePath keeps printable ASCII but backslash, escapes the rest", () => {
  assert.equal(escapePath(B("a b\\c\n\x7f\xff~!")), "a\\x20b\\x5cc\\x0a\\x7f\\xff~!");
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  assert.deepEqual(unescapePath(escapePath(all)), all);
  assert.deepEqual(unescapePath("\\x4A\\x4a"), B("JJ"), "either hex case reads back");
  assert.throws(() => unescapePath("a b"), /unescaped character/);
  assert.throws(() => unescapePath("é"), /unescaped character/);
  assert.throws(() => unescapePath("a\\n"), /bad escape/);
  assert.throws(() => unescapePath("a\\x1"), /bad escape/);
});

test("baseName and parentPath", () => {
  assert.deepEqual(baseName(B("a/b/c")), B("c"));
  assert.deepEqual(baseName(B("c")), B("c"));
  assert.deepEqual(parentPath(B("a/b/c")), B("a/b"));
  assert.deepEqual(parentPath(B("c")), B(""));
});
