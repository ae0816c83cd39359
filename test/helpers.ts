/** Shared by the tests: run the real crecipe command in a temp project. */
import assert from "node:assert/strict";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const repo = path.resolve(import.meta.dirname, "..");
export const cli = path.join(repo, "bin", "crecipe.js");
export const modUrl = path.join(repo, "lib", "mod.ts");

/** A fresh temp directory, removed when the process exits. */
/** CI runs the tests as root; root can also run crecipe as the test user scripts/setup.sh --for-tests makes. */
export const isRoot = process.getuid?.() === 0;
export const hasTestUser = isRoot && spawnSync("id", ["crecipe-test"]).status === 0;
export const NEEDS_TEST_USER = "needs root and the crecipe-test user (scripts/setup.sh --for-tests)";

/** The command and arguments that run the crecipe CLI with `args` as the test user, with its own HOME and `env`. */
export function asTestUser(args: string[], env: Record<string, string> = {}): [string, string[]] {
  const vars = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  return ["setpriv", ["--reuid=crecipe-test", "--regid=crecipe-test", "--init-groups", "env", "HOME=/home/crecipe-test", ...vars, process.execPath, cli, ...args]];
}

/** Run the crecipe CLI with `args` in `cwd` as the test user. */
export function crecipeAsTestUser(cwd: string, args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> {
  const [command, argv] = asTestUser(args, env);
  return spawnSync(command, argv, { cwd, encoding: "utf8" });
}

export function tempDir(prefix = "crecipe-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Run extends SpawnSyncReturns<string> {
  out: string;
  err: string;
}

/** Run `crecipe ARGS` in `cwd` with Node, synchronously (killed after `timeout` ms, if given). */
export function crecipe(cwd: string, args: string[], env: Record<string, string> = {}, timeout?: number): Run {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: "utf8", env: { ...process.env, ...env }, timeout });
  return Object.assign(r, { out: r.stdout, err: r.stderr });
}

/** Start `crecipe ARGS` in the background. */
export function crecipeAsync(cwd: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [cli, ...args], { cwd, env: { ...process.env, ...env } });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const done = new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, out, err }))
  );
  return { child, done };
}

export function write(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/**
 * A directory with a recipe (r.ts) whose target `big` is the layer of a tree over 16 MiB,
 * so its packing threads start before its list is made, and whose list fails (a .wh.
 * name), so they are never used.
 */
export function layerWhoseListFails(): string {
  const dir = tempDir();
  write(dir, "r.ts", `
import { fs, layer } from ${JSON.stringify(modUrl)};
export const big = layer(fs("big", async (root) => {
  await root.write("big.bin", Buffer.alloc(17 << 20, 1));
  await root.write("etc/.wh.x", "");
}));`);
  return dir;
}

/** The run of layerWhoseListFails ended by itself, with the list's error. */
export function assertListFailed(r: { status: number | null; signal: NodeJS.Signals | null; stderr: string }): void {
  assert.equal(r.signal, null, "the run did not end by itself");
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /FAILED big\.list: .*etc\/\.wh\.x/);
}

export function read(dir: string, name: string): string {
  return fs.readFileSync(path.join(dir, name), "utf8");
}

/** Lines a recipe's builders appended to calls.log (one per builder run). */
export function calls(dir: string): string[] {
  try {
    return fs.readFileSync(path.join(dir, "calls.log"), "utf8").split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

export function resetCalls(dir: string): void {
  fs.rmSync(path.join(dir, "calls.log"), { force: true });
}

export async function waitFor(check: () => boolean, timeoutMs = 20000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** True when a process is gone or a zombie (killed, not yet reaped by a non-reaping init). */
export function processGone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/**
 * Run `body` with a tmpfs of `size` (e.g. "40m") mounted at `dir`/small (root only), to
 * fill a disk: the mount's path, unmounted afterwards whatever happens.
 */
export function withSmallDisk(dir: string, size: string, body: (small: string) => void): void {
  const small = path.join(dir, "small");
  fs.mkdirSync(small);
  assert.equal(spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", small]).status, 0, "mount a tmpfs");
  try {
    body(small);
  } finally {
    spawnSync("umount", [small]);
  }
}

