/**
 * The arrows go one way (STYLE.md): bin → mod/inspect → run/targets/debian → tree →
 * engine → formats, with host.ts and runtime.ts beside them; formats import nothing of
 * crecipe; nothing in lib imports bin or the entry points; no module imports itself
 * through others. Read from the sources, so it stays true.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { repo } from "./helpers.ts";

/** Folder (or file) → what it may import (besides itself and node: builtins). */
const MAY: Record<string, string[]> = {
  "lib/formats": [],
  "lib/engine": ["lib/formats"],
  "lib/host.ts": ["lib/engine", "lib/formats"],
  "lib/runtime.ts": ["lib/engine"],
  "lib/tree": ["lib/engine", "lib/formats", "lib/host.ts", "lib/runtime.ts"],
  "lib/targets": ["lib/tree", "lib/engine", "lib/formats", "lib/host.ts", "lib/runtime.ts"],
  "lib/net": ["lib/targets", "lib/tree", "lib/engine", "lib/formats", "lib/host.ts", "lib/runtime.ts"],
  "lib/run": ["lib/targets", "lib/tree", "lib/engine", "lib/formats", "lib/host.ts", "lib/runtime.ts"],
  "lib/debian": ["lib/targets", "lib/tree", "lib/engine", "lib/formats", "lib/host.ts", "lib/runtime.ts"],
  "lib/mod.ts": ["lib"],
  "lib/inspect.ts": ["lib"],
  "lib/net.ts": ["lib"],
  "bin": ["lib/mod.ts", "lib/inspect.ts", "lib/net.ts"],
};

const unit = (file: string) => Object.keys(MAY).filter((k) => file === k || file.startsWith(k + "/")).sort((a, b) => b.length - a.length)[0];

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(repo, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return sources(rel);
    return /\.ts$/.test(e.name) ? [rel] : [];
  });
}

/** The crecipe modules a file imports (values only when `valuesOnly`). */
function imports(file: string, valuesOnly: boolean): string[] {
  const text = fs.readFileSync(path.join(repo, file), "utf8");
  const found: string[] = [];
  for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^;]*?\s+from\s+"(\.[^"]+)"|^import\s+"(\.[^"]+)"/gm)) {
    if (valuesOnly && m[2]) continue;
    found.push(path.normalize(path.join(path.dirname(file), m[3] ?? m[4])));
  }
  return found;
}

const files = [...sources("lib"), ...sources("bin")];

it("each module imports only what its folder may import", () => {
  const wrong: string[] = [];
  for (const file of files) {
    const from = unit(file);
    assert.ok(from, `${file} belongs to no unit of the layout: add it to MAY`);
    for (const to of imports(file, false)) {
      const target = unit(to);
      const allowed = target === from || MAY[from].some((a) => to === a || to.startsWith(a + "/"));
      if (!allowed) wrong.push(`${file} → ${to}`);
    }
  }
  assert.deepEqual(wrong, []);
});

it("no module imports itself through others", () => {
  const graph = new Map(files.map((f) => [f, imports(f, true)]));
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (file: string, trail: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") return void cycles.push([...trail.slice(trail.indexOf(file)), file].join(" → "));
    state.set(file, "open");
    for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
    state.set(file, "done");
  };
  for (const file of files) visit(file, []);
  assert.deepEqual(cycles, []);
});

it("the README's layout table says what MAY says", () => {
  const readme = fs.readFileSync(path.join(repo, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## For contributors"));
  const rows: Record<string, string[]> = {};
  for (const m of section.matchAll(/^\| `([^`]+?)\/?` \| .* \| ([^|]+) \|$/gm)) {
    rows[m[1]] = m[2].trim() === "nothing" ? [] : m[2].split(",").map((s) => s.trim());
  }
  const may = Object.fromEntries(Object.entries(MAY).map(([k, v]) => [k, [...v].sort()]));
  assert.deepEqual(Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, v.sort()])), may);
});
