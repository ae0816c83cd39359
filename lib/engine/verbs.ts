/** Looking at a build without building: --list, --graph, --dry-run, --why, --clean. */
import * as fs from "node:fs";
import * as path from "node:path";
import { Engine, type Verdict } from "./build.ts";
import { removeTree } from "./io.ts";
import { sweepTempDir } from "./lock.ts";
import { CrecipeError } from "./errors.ts";
import { declared, isNode, lookup, type Node } from "./node.ts";
import { layout, logFile, outputPath, readState, recordedTargets, removeState, trashDir, treeDir } from "./state.ts";

/** The recipe's default export, or the named exports / target names. */
export function resolveTargets(module: Record<string, unknown>, names: string[], recipe: string): Node[] {
  const asNodes = (value: unknown, what: string): Node[] => {
    const list = Array.isArray(value) ? value : [value];
    if (!list.every(isNode)) throw new CrecipeError(`${what} is not a target or an array of targets`, { fix: "export default the targets to build" });
    return list as Node[];
  };
  if (names.length === 0) {
    if (module.default === undefined) {
      throw new CrecipeError(`${recipe} has no default export`, {
        fix: `name targets to build (crecipe ${recipe} TARGET…; see --list) or add \`export default [...]\``,
      });
    }
    return asNodes(module.default, `${recipe}'s default export`);
  }
  return names.flatMap((name) => {
    if (name in module && name !== "default") return asNodes(module[name], `export ${name}`);
    const node = lookup(name);
    if (node) return [node];
    const known = declared().map((n) => n.name).slice(0, 30).join(", ");
    throw new CrecipeError(`no target named ${name} in ${recipe}`, { fix: `known targets: ${known}` });
  });
}

/** Every declared target with its state: up to date, would rebuild (why), never built. */
export async function listTargets(outDir: string): Promise<string> {
  const engine = quietEngine(outDir);
  const memo = new Map<string, Promise<Verdict>>();
  const rows: string[] = [];
  for (const node of declared()) {
    const verdict = await dryCheck(engine, node, memo);
    const state = verdict.dirty ? (verdict.maybe ? "may rebuild" : "would rebuild") : "up to date";
    rows.push(`${node.name.padEnd(28)} ${node.kind.padEnd(9)} ${state.padEnd(14)} ${verdict.dirty ? verdict.reason : ""}${node.precious ? " [precious]" : ""}`.trimEnd());
  }
  return rows.join("\n") + "\n";
}

/** What -n prints: each target that would rebuild and why (deepest first). */
export async function explain(outDir: string, targets: Node[], single: boolean): Promise<string> {
  const engine = quietEngine(outDir);
  const memo = new Map<string, Promise<Verdict>>();
  const lines: string[] = [];
  const seen = new Set<string>();
  const visit = async (node: Node, depth: number) => {
    if (seen.has(node.name)) return;
    seen.add(node.name);
    const verdict = await dryCheck(engine, node, memo);
    for (const dep of verdict.state?.deps ?? []) {
      const depNode = "target" in dep ? lookup(dep.target) : undefined;
      if (depNode && !single) await visit(depNode, depth + 1);
    }
    if (single) lines.push(`${node.name}: ${verdict.dirty ? (verdict.maybe ? "may rebuild: " : "would rebuild: ") + verdict.reason : "up to date"}`);
    else if (verdict.dirty) lines.push(`${verdict.maybe ? "may rebuild  " : "would rebuild"} ${node.name}: ${verdict.reason}`);
  };
  for (const node of targets) await visit(node, 0);
  if (!single && lines.length === 0) lines.push("everything is up to date");
  return lines.join("\n") + "\n";
}

function dryCheck(engine: Engine, node: Node, memo: Map<string, Promise<Verdict>>): Promise<Verdict> {
  let verdict = memo.get(node.name);
  if (!verdict) {
    verdict = engine.check(node, async (dep) => {
      const v = await dryCheck(engine, dep, memo);
      return v.dirty ? "rebuild" : v.state!.stamp;
    });
    memo.set(node.name, verdict);
  }
  return verdict;
}

function quietEngine(outDir: string): Engine {
  const warnings: string[] = [];
  return new Engine({
    outDir,
    reporter: {
      start() {}, finish() {}, info() {}, command() {}, failure() {}, summary() {},
      warn: (m) => warnings.push(m),
    },
  });
}

/** The recorded dependency graph (from the last builds), as text or Graphviz dot. */
export function describeGraph(outDir: string, roots: Node[], format: "text" | "dot"): string {
  const l = layout(outDir);
  const depsOf = (name: string) => {
    const read = readState(l, name);
    return read.ok ? read.state.deps : [];
  };
  if (format === "dot") {
    const lines = ["digraph crecipe {", "  rankdir=LR;"];
    const seen = new Set<string>();
    const walk = (name: string) => {
      if (seen.has(name)) return;
      seen.add(name);
      lines.push(`  ${JSON.stringify(name)};`);
      for (const dep of depsOf(name)) {
        if ("target" in dep) lines.push(`  ${JSON.stringify(name)} -> ${JSON.stringify(dep.target)};`), walk(dep.target);
        else lines.push(`  ${JSON.stringify(name)} -> ${JSON.stringify(dep.file)} [style=dashed];`);
      }
    };
    for (const root of roots) walk(root.name);
    lines.push("}");
    return lines.join("\n") + "\n";
  }
  const lines: string[] = [];
  const printed = new Set<string>();
  const walk = (name: string, depth: number) => {
    const again = printed.has(name);
    const known = readState(l, name).ok;
    lines.push(`${"  ".repeat(depth)}${name}${again ? " (see above)" : known ? "" : " (not built yet)"}`);
    if (again) return;
    printed.add(name);
    for (const dep of depsOf(name)) {
      if ("target" in dep) walk(dep.target, depth + 1);
      else lines.push(`${"  ".repeat(depth + 1)}${dep.file} (host file)`);
    }
  };
  for (const root of roots) walk(root.name, 0);
  return lines.join("\n") + "\n";
}

/** Remove outputs, state and logs of every recorded target except precious ones. */
export function clean(outDir: string): void {
  const l = layout(outDir);
  let removed = 0;
  const kept: string[] = [];
  for (const name of recordedTargets(l)) {
    const read = readState(l, name);
    if (read.ok && (read.state.precious || lookup(name)?.precious)) {
      kept.push(name);
      continue;
    }
    removeTree(outputPath(l, name));
    if (read.ok && read.state.manifest) for (const part of [".list", ".stat"]) fs.rmSync(path.join(treeDir(l), read.state.manifest + part), { force: true });
    removeState(l, name);
    fs.rmSync(logFile(l, name), { force: true });
    removed++;
  }
  // A build running now keeps its temp dirs; an older crecipe's unnamed ones go at once.
  // So do what dead builds left to a background removal that did not finish.
  sweepTempDir(path.join(l.stateDir, "tmp"), 0);
  sweepTempDir(trashDir(l), 0);
  console.error(`crecipe: removed ${removed} outputs${kept.length ? `; kept ${kept.join(", ")} (precious: --xclean removes them)` : ""}`);
}
