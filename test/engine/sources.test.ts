/** bin/sources.js on the shapes of code esbuild prints: what a function mentions, what a statement declares. */
import assert from "node:assert/strict";
import { it } from "node:test";
// @ts-ignore: plain JavaScript, loaded before TypeScript can be
import { analyze, SourceIndex } from "../../bin/sources.js";

const local = (spec: string) => (spec.startsWith("crecipe") ? "crecipe" : spec.startsWith("./") ? { file: spec } : null);

/** The names the function `fn` (its text, as in the module) reaches, sorted. */
function reach(code: string, fn: string, modules: Record<string, string> = {}): string[] {
  const index = new SourceIndex();
  index.add("main", analyze(code, local));
  for (const [file, text] of Object.entries(modules)) index.add(file, analyze(text, local));
  assert.ok(code.includes(fn) || Object.values(modules).some((m) => m.includes(fn)));
  return index.refs(fn).map((r: { name: string }) => r.name).sort();
}

it("regular expressions, templates and properties do not hide or invent names", () => {
  const fn = "async (out) => {\n  const re = /A\\/[}`]/g;\n  write(out, `${A}${`${B.C}`}` + obj.D + { E: 1 }.E);\n}";
  const code = `import { file } from "crecipe";\nconst A = 1;\nconst B = { C: 2 };\nconst D = 3;\nconst E = 4;\nconst obj = {};\nfile("x", ${fn});\n`;
  assert.deepEqual(reach(code, fn), ["A", "B", "obj"]);
});

it("destructuring, several declarators, and what a function reaches through another", () => {
  const fn = "(out) => write(out, x + f())";
  const code = `const { a, b: [x] } = data(), y = 2;\nfunction f() {\n  return g() + y;\n}\nfunction g() {\n  return 1;\n}\nfunction data() {\n  return {};\n}\nconst h = ${fn};\n`;
  assert.deepEqual(reach(code, fn), ["a, x, y", "data", "f", "g"]);
});

it("a builder given to a crecipe helper is not part of what its statement means to others", () => {
  const fn = "async (root) => root.copyIn([hello])";
  const code = `import { file, fs } from "crecipe";\nconst TEXT = "t";\nconst hello = file("hello", async (out) => write(out, TEXT));\nconst s = fs("s", ${fn});\n`;
  assert.deepEqual(reach(code, fn), ["hello"]);
});

it("imports follow local modules, their re-exports and namespaces", () => {
  const fn = "() => A + ns.B";
  const code = `import { A } from "./a";\nimport * as ns from "./b";\nconst f = ${fn};\n`;
  const modules = { "./a": `export { A } from "./c";\n`, "./b": `const B = 1;\nconst Z = 2;\nexport { B, Z };\n`, "./c": `const A = "a";\nexport { A };\n` };
  assert.deepEqual(reach(code, fn, modules), ["A", "B", "Z"]);
});

it("a statement that changes a binding counts for it", () => {
  const fn = "() => CONFIG.x";
  const code = `const CONFIG = {};\nCONFIG.x = 1;\nconst f = ${fn};\n`;
  assert.deepEqual(reach(code, fn), ["CONFIG", "a top-level statement"]);
});
