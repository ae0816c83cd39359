/**
 * Persistent build state, one small JSON file per target under <out>/.crecipe/state/.
 * One file a target keeps writers apart: only the holder of a target's lock writes it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DENIED, OutDirError, systemError } from "./errors.ts";

/** 2: tree outputs are stamped by their manifest (engine/manifest.ts) and signed by their top directory. */
export const STATE_VERSION = 2;

/** A dependency recorded while building: another target, or a host file. */
export type Dep =
  | { target: string; stamp: string }
  | { file: string; hash: string | null; sig: string };

export interface TargetState {
  v: number;
  identity: string;
  /** When the builder reads the recipe's sources: the hash of its text and options alone… */
  recipe?: string;
  /** …and what it read, "FILE#NAME" → hash of the statement's text, [line, names] for messages. */
  sources?: [key: string, hash: string, line: number | null, name: string][];
  /** Content hash of the output (file, tree or value). Dependents record it. */
  stamp: string;
  /** What the output is on disk. */
  output: "file" | "dir" | "symlink" | "none";
  /** Cheap stat signature of the output when it was built (hand-edit detection). */
  sig: string;
  /** Content hash of the output alone (the stamp also covers the value). */
  outHash: string | null;
  /** For a directory output: its manifest's file name under <out>/.crecipe/tree/. */
  manifest?: string;
  /** Kept by --clean. */
  precious: boolean;
  value: unknown;
  deps: Dep[];
  builtAt: string;
  seconds: number;
}

export interface Layout {
  outDir: string;
  stateDir: string;
}

export function layout(outDir: string): Layout {
  const abs = path.resolve(outDir);
  return { outDir: abs, stateDir: path.join(abs, ".crecipe") };
}

/** File names for a target: names are restricted (engine/node.ts), so they are safe here. */
export const stateFile = (l: Layout, name: string) => path.join(l.stateDir, "state", `${name}.json`);
export const lockFile = (l: Layout, name: string) => path.join(l.stateDir, "lock", `${name}.lock`);
export const logFile = (l: Layout, name: string) => path.join(l.stateDir, "log", `${name}.log`);
export const outputPath = (l: Layout, name: string) => path.join(l.outDir, name);
export const tmpDir = (l: Layout) => path.join(l.stateDir, "tmp");
/** Temp dirs being removed in the background (io.ts removeTreeSoon). */
export const trashDir = (l: Layout) => path.join(l.stateDir, "trash");
export const treeDir = (l: Layout) => path.join(l.stateDir, "tree");

export type ReadResult =
  | { ok: true; state: TargetState }
  | { ok: false; reason: "missing" }
  | { ok: false; reason: "older"; version: unknown }
  | { ok: false; reason: "corrupt"; detail: string };

export function readState(l: Layout, name: string): ReadResult {
  let text: string;
  try {
    text = fs.readFileSync(stateFile(l, name), "utf8");
  } catch {
    return { ok: false, reason: "missing" };
  }
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: "corrupt", detail: (error as Error).message };
  }
  if (isObject(state) && typeof state.v === "number" && state.v !== STATE_VERSION) return { ok: false, reason: "older", version: state.v };
  const problem = shapeProblem(state);
  if (problem) return { ok: false, reason: "corrupt", detail: problem };
  return { ok: true, state: state as TargetState };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const OUTPUTS = new Set(["file", "dir", "symlink", "none"]);

/**
 * What in a parsed state file is not a TargetState, or undefined: everything a reader
 * looks at is checked, so valid JSON of another shape is a rebuild, never a crash.
 */
function shapeProblem(state: unknown): string | undefined {
  if (!isObject(state)) return "not a JSON object";
  const expect: [keyof TargetState, string, (v: unknown) => boolean][] = [
    ["v", "the version", (v) => v === STATE_VERSION],
    ["identity", "a string", (v) => typeof v === "string"],
    ["stamp", "a string", (v) => typeof v === "string"],
    ["output", "file, dir, symlink or none", (v) => OUTPUTS.has(v as string)],
    ["sig", "a string", (v) => typeof v === "string"],
    ["outHash", "a string or null", (v) => v === null || typeof v === "string"],
    ["manifest", "a file name", (v) => v === undefined || (typeof v === "string" && !v.includes("/"))],
    ["precious", "true or false", (v) => typeof v === "boolean"],
    ["deps", "a list", Array.isArray],
  ];
  for (const [key, what, ok] of expect) {
    if (!ok(state[key])) return `${key} is not ${what}`;
  }
  for (const [index, dep] of (state.deps as unknown[]).entries()) {
    const target = isObject(dep) && typeof dep.target === "string" && typeof dep.stamp === "string" && !("file" in dep);
    const file = isObject(dep) && typeof dep.file === "string" && (dep.hash === null || typeof dep.hash === "string") && typeof dep.sig === "string";
    if (!target && !file) return `deps[${index}] is neither a target nor a host file`;
  }
  return undefined;
}

/** Write by temp file + rename: a reader sees the old state or the new one, never half. */
export function writeState(l: Layout, name: string, state: TargetState): void {
  writeFileAtomic(stateFile(l, name), JSON.stringify(state) + "\n");
}

export function removeState(l: Layout, name: string): void {
  fs.rmSync(stateFile(l, name), { force: true });
}

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(temp, data);
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
}

/** Names of every target that has a state file. */
export function recordedTargets(l: Layout): string[] {
  try {
    return fs.readdirSync(path.join(l.stateDir, "state"))
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5));
  } catch {
    return [];
  }
}

/**
 * A write crecipe does in the out dir (a lock, a state, a log, an output, a temp dir) that
 * failed for want of permission, as an OutDirError; during a build (`building`), naming
 * the target whose file it is. `own` is a directory whose failures are not the out dir's
 * fault: what a builder does in its own temp dir is its business.
 */
export function outDirFailure(error: unknown, l: Layout, options: { building?: boolean; own?: string } = {}): OutDirError | undefined {
  if (error instanceof OutDirError) return error;
  const e = systemError(error);
  if (!e || !DENIED.has(e.code!)) return undefined;
  const inside = (p: unknown, dir: string): p is string => typeof p === "string" && (p === dir || p.startsWith(dir + path.sep));
  const where = [e.path, e.dest].find((p): p is string => inside(p, l.outDir) && !(options.own !== undefined && inside(p, options.own)));
  if (where === undefined) return undefined;
  return new OutDirError(l.outDir, where, e.code!, { target: options.building ? targetOf(l, where) : undefined, cause: error });
}

/** The target a file of the out dir belongs to (out/NAME, state/NAME.json, tmp/NAME.PID.X/…), if any. */
function targetOf(l: Layout, file: string): string | undefined {
  const [top, dir, name] = path.relative(l.outDir, file).split(path.sep);
  if (top !== ".crecipe") return top || undefined;
  const suffix: Record<string, RegExp> = {
    state: /\.json(\.\d+\.tmp)?$/,
    lock: /\.lock$/,
    log: /\.log$/,
    tmp: /\.\d+\.[a-z0-9]+$/,
    tree: /\.[0-9a-f]{16}\.(list|stat)$/,
  };
  return name && suffix[dir]?.test(name) ? name.replace(suffix[dir], "") : undefined;
}
