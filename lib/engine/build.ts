/**
 * build(): decide what is dirty (redo's isdirty), build it into a temp path under a
 * per-target lock, rename it into place, record its stamp. Dependencies are found while
 * building: whatever a builder needs through its context is recorded.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type BuildContext, type Result, runInContext } from "./context.ts";
import { BuildError, CrecipeError, CycleError, InterruptedError } from "./errors.ts";
import { contentHash, sha256, stableStringify, statSignature } from "./hash.ts";
import { lock, type Lock, tryLock } from "./lock.ts";
import { declaredLate, isNode, lookup, markBuilding, type Node } from "./node.ts";
import { consoleReporter, type Reporter } from "./report.ts";
import {
  type Dep,
  layout,
  type Layout,
  lockFile,
  logFile,
  outputPath,
  readState,
  STATE_VERSION,
  type TargetState,
  tmpDir,
  writeState,
} from "./state.ts";

export interface BuildOptions {
  /** Out dir (default "out" under the current directory). */
  outDir?: string;
  /** Targets built at once (default: number of CPUs). */
  jobs?: number;
  verbose?: boolean;
  quiet?: boolean;
  /** Print why each target rebuilds. */
  why?: boolean;
  reporter?: Reporter;
  /** Install SIGINT/SIGTERM handlers that clean up and exit (the CLI does). */
  handleSignals?: boolean;
}

/** Why a target is (or would be) rebuilt; `dirty: false` means up to date. */
export interface Verdict {
  dirty: boolean;
  /** "maybe": an upstream target would rebuild and may or may not change (dry runs). */
  maybe?: boolean;
  reason: string;
  state?: TargetState;
}

/**
 * Build targets (and what they need) and return their results.
 *
 * ```ts
 * import { build } from "crecipe";
 * import { libs } from "./recipes/simple.ts";
 * const [result] = await build([run.local(libs)]);
 * console.log(await readFile(result.path!, "utf8"));
 * ```
 */
export async function build<T>(node: Node<T>, options?: BuildOptions): Promise<Result<T>>;
export async function build(nodes: readonly Node[], options?: BuildOptions): Promise<Result[]>;
export async function build(nodes: Node | readonly Node[], options: BuildOptions = {}): Promise<Result | Result[]> {
  const list = isNode(nodes) ? [nodes] : [...nodes];
  for (const n of list) {
    if (!isNode(n)) throw new CrecipeError(`build() takes targets; got ${typeof n}`, { fix: "pass nodes returned by fs(), target(), image(), …" });
  }
  const engine = new Engine(options);
  const started = performance.now();
  markBuilding(1);
  const uninstall = options.handleSignals ? engine.installSignalHandlers() : () => {};
  try {
    const settled = await Promise.allSettled(list.map((n) => engine.ensure(n, undefined)));
    const failed = settled.find((s) => s.status === "rejected") as PromiseRejectedResult | undefined;
    engine.reporter.summary(engine.counts, (performance.now() - started) / 1000);
    if (failed) throw failed.reason;
    const results = settled.map((s) => (s as PromiseFulfilledResult<Result>).value);
    return isNode(nodes) ? results[0] : results;
  } finally {
    markBuilding(-1);
    uninstall();
  }
}

/** The parent chain of a need, for indentation and cycle reports. */
interface Frame {
  name: string;
  depth: number;
}

class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) return void this.free--;
    await new Promise<void>((r) => this.waiting.push(r));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

export class Engine {
  readonly layout: Layout;
  readonly reporter: Reporter;
  readonly counts = { built: 0, upToDate: 0, failed: 0 };
  private readonly slots: Semaphore;
  private readonly inflight = new Map<string, Promise<Result>>();
  /** The wait-for graph: a → {b} while a's builder waits for b. A new edge closing a loop is a cycle. */
  private readonly waits = new Map<string, Set<string>>();
  private readonly locks = new Set<Lock>();
  private readonly temps = new Set<string>();
  private readonly children = new Set<number>();
  private readonly controller = new AbortController();
  private firstFailure: unknown;
  private warnedCorrupt = new Set<string>();
  private warnedLate = new Set<string>();

  constructor(private readonly options: BuildOptions = {}) {
    // Builders and their commands create files with the same modes whatever the
    // caller's umask: outputs must not depend on who ran the build.
    try {
      process.umask(0o022);
    } catch { /* a runtime without umask: modes are set explicitly where it matters */ }
    this.layout = layout(options.outDir ?? "out");
    this.reporter = options.reporter ?? consoleReporter({ verbose: options.verbose, quiet: options.quiet, why: options.why });
    this.slots = new Semaphore(Math.max(1, options.jobs ?? os.availableParallelism?.() ?? os.cpus().length));
  }

  /** Make `node` up to date (building it if needed) and return its result. */
  async ensure(node: Node, from: Frame | undefined): Promise<Result> {
    if (from) this.addWait(from.name, node.name);
    try {
      let promise = this.inflight.get(node.name);
      if (!promise) {
        promise = this.update(node, (from?.depth ?? -1) + 1);
        this.inflight.set(node.name, promise);
      }
      return await promise;
    } finally {
      if (from) this.waits.get(from.name)?.delete(node.name);
    }
  }

  private addWait(from: string, to: string): void {
    const pathTo = (start: string, goal: string, seen = new Set<string>()): string[] | undefined => {
      if (start === goal) return [start];
      if (seen.has(start)) return undefined;
      seen.add(start);
      for (const next of this.waits.get(start) ?? []) {
        const rest = pathTo(next, goal, seen);
        if (rest) return [start, ...rest];
      }
      return undefined;
    };
    const back = pathTo(to, from);
    if (back) {
      // Start the cycle at the target asked for first, so it reads in the order it was met.
      const order = [...this.inflight.keys()];
      const loop = [from, ...back].slice(0, -1);
      const first = loop.reduce((best, name, i) => (order.indexOf(name) < order.indexOf(loop[best]) ? i : best), 0);
      const rotated = [...loop.slice(first), ...loop.slice(0, first)];
      throw new CycleError([...rotated, rotated[0]]);
    }
    let set = this.waits.get(from);
    if (!set) this.waits.set(from, (set = new Set()));
    set.add(to);
  }

  private async update(node: Node, depth: number): Promise<Result> {
    if (this.firstFailure) throw this.firstFailure;
    const frame = { name: node.name, depth };
    const verdict = await this.check(node, (dep) => this.ensure(dep, frame).then((r) => r.stamp));
    if (!verdict.dirty) {
      this.counts.upToDate++;
      return this.resultOf(node, verdict.state!, false);
    }
    return await this.rebuild(node, verdict.reason, frame);
  }

  /**
   * redo's isdirty: missing, recipe changed, output edited by hand, a host file's content
   * changed, or an upstream stamp changed. `upstream` makes a target dep current and
   * returns its stamp (or "rebuild" in a dry run).
   */
  async check(node: Node, upstream: (dep: Node) => Promise<string>): Promise<Verdict> {
    const read = readState(this.layout, node.name);
    if (!read.ok) {
      if (read.reason === "corrupt") {
        if (!this.warnedCorrupt.has(node.name)) {
          this.warnedCorrupt.add(node.name);
          this.reporter.warn(`state of ${node.name} is unreadable (${read.detail}); rebuilding it`);
        }
        return { dirty: true, reason: "its state file was unreadable" };
      }
      return { dirty: true, reason: "it was never built" };
    }
    const state = read.state;
    if (state.identity !== node.identity) return { dirty: true, reason: "its recipe (builder text or options) changed", state };
    const out = outputPath(this.layout, node.name);
    // Signatures that changed while the content did not (a touch, a copy) are refreshed
    // afterwards, so the next check is a stat again, not a hash.
    const refreshed: { output?: string; deps: Map<number, string> } = { deps: new Map() };
    if (state.output !== "none") {
      const now = statSignature(out);
      if (now.kind === "missing") return { dirty: true, reason: `its output ${this.show(out)} is missing`, state };
      if (now.sig !== state.sig) {
        const hash = contentHash(out);
        if (hash !== state.outHash) {
          this.reporter.warn(`${this.show(out)} was modified outside crecipe; rebuilding it`);
          return { dirty: true, reason: `its output ${this.show(out)} was modified by hand`, state };
        }
        refreshed.output = now.sig;
      }
    }
    const targetDeps: { dep: Node; stamp: string }[] = [];
    for (const [index, dep] of state.deps.entries()) {
      if ("file" in dep) {
        const now = statSignature(dep.file);
        if (now.sig === dep.sig) continue;
        const hash = now.kind === "missing" ? null : contentHash(dep.file) ?? null;
        if (hash !== dep.hash) return { dirty: true, reason: `host file ${dep.file} changed`, state };
        refreshed.deps.set(index, now.sig);
      } else {
        const declared = lookup(dep.target);
        if (!declared) return { dirty: true, reason: `it needed ${dep.target}, which is no longer declared`, state };
        targetDeps.push({ dep: declared, stamp: dep.stamp });
      }
    }
    const stamps = await Promise.all(targetDeps.map((d) => upstream(d.dep)));
    for (let i = 0; i < stamps.length; i++) {
      if (stamps[i] === "rebuild") return { dirty: true, maybe: true, reason: `${targetDeps[i].dep.name} would rebuild`, state };
      if (stamps[i] !== targetDeps[i].stamp) return { dirty: true, reason: `upstream ${targetDeps[i].dep.name} changed`, state };
    }
    if (refreshed.output || refreshed.deps.size) this.refreshSignatures(node.name, state, refreshed);
    return { dirty: false, reason: "up to date", state };
  }

  private refreshSignatures(name: string, seen: TargetState, refreshed: { output?: string; deps: Map<number, string> }): void {
    const held = tryLock(lockFile(this.layout, name));
    if (!("release" in held)) return; // someone is building it: they will write a fresh state
    try {
      const read = readState(this.layout, name);
      if (!read.ok || read.state.stamp !== seen.stamp || read.state.builtAt !== seen.builtAt) return;
      const state = read.state;
      if (refreshed.output) state.sig = refreshed.output;
      for (const [index, sig] of refreshed.deps) (state.deps[index] as { sig: string }).sig = sig;
      writeState(this.layout, name, state);
    } finally {
      held.release();
    }
  }

  private resultOf(node: Node, state: TargetState, built: boolean): Result {
    return {
      name: node.name,
      path: state.output === "none" ? undefined : outputPath(this.layout, node.name),
      value: state.value,
      stamp: state.stamp,
      built,
    };
  }

  private async rebuild(node: Node, reason: string, frame: Frame): Promise<Result> {
    const lockPath = lockFile(this.layout, node.name);
    let waited = false;
    const held = await lock(lockPath, (holder) => {
      waited = true;
      this.reporter.info(`${node.name} is being built by another crecipe (pid ${holder.split(" ")[0]}); waiting`);
    }, this.controller.signal);
    this.locks.add(held);
    try {
      if (waited) {
        // The other process may have built it meanwhile: look again.
        const again = await this.check(node, (dep) => this.ensure(dep, frame).then((r) => r.stamp));
        if (!again.dirty) {
          this.counts.upToDate++;
          return this.resultOf(node, again.state!, false);
        }
      }
      if (this.firstFailure) throw this.firstFailure;
      this.reporter.start(node.name, frame.depth, reason);
      await this.slots.acquire();
      try {
        const result = await this.run(node, frame);
        this.counts.built++;
        return result;
      } catch (error) {
        const own = !(error instanceof BuildError) || error.target === node.name;
        if (own && !(error instanceof InterruptedError)) this.counts.failed++;
        this.firstFailure ??= error;
        throw error;
      } finally {
        this.slots.release();
        this.reporter.finish(node.name, !this.firstFailure);
      }
    } finally {
      held.release();
      this.locks.delete(held);
    }
  }

  private async run(node: Node, frame: Frame): Promise<Result> {
    const layout = this.layout;
    const tmpRoot = tmpDir(layout);
    this.sweepTemps(tmpRoot);
    const workDir = path.join(tmpRoot, `${node.name}.${process.pid}.${Math.random().toString(36).slice(2, 8)}`);
    const out = path.join(workDir, "out");
    const scratch = path.join(workDir, "scratch");
    fs.mkdirSync(scratch, { recursive: true });
    this.temps.add(workDir);
    const logPath = logFile(layout, node.name);
    fs.mkdirSync(path.dirname(logPath), { recursive: true });
    const logFd = fs.openSync(logPath, "w");
    const deps = new Map<string, Dep>();
    let lastCommand: string | undefined;
    let trustedHash: string | undefined;
    const started = performance.now();
    const engine = this;
    const need = async (dep: Node): Promise<Result> => {
      if (!isNode(dep)) throw new CrecipeError(`${node.name}: need() takes a target, got ${typeof dep}`, { target: node.name });
      if (declaredLate(dep.name) && !this.warnedLate.has(dep.name)) {
        this.warnedLate.add(dep.name);
        this.reporter.warn(`${dep.name} was declared while ${node.name} was building; declare it when the recipe loads, or every run rebuilds ${node.name}`);
      }
      this.slots.release(); // waiting for a dependency does not hold a job slot
      try {
        const result = await this.ensure(dep, frame);
        deps.set(`t:${dep.name}`, { target: dep.name, stamp: result.stamp });
        return result;
      } finally {
        await this.slots.acquire();
      }
    };
    const ctx: BuildContext = {
      name: node.name,
      out,
      tmp: scratch,
      outDir: layout.outDir,
      finalPath: outputPath(layout, node.name),
      signal: this.controller.signal,
      verbose: Boolean(this.options.verbose),
      need: async (dep) => (await need(dep)).path ?? "",
      needAll: (list) => Promise.all(list.map(async (d) => (await need(d)).path ?? "")),
      result: (dep) => need(dep) as never,
      dependOn(...paths) {
        for (const p of paths) {
          const abs = path.resolve(p);
          if (deps.has(`f:${abs}`)) continue;
          const { kind, sig } = statSignature(abs);
          deps.set(`f:${abs}`, { file: abs, hash: kind === "missing" ? null : contentHash(abs) ?? null, sig });
        }
      },
      async read(p) {
        const abs = path.resolve(p);
        const { sig } = statSignature(abs);
        const data = await fs.promises.readFile(abs);
        deps.set(`f:${abs}`, { file: abs, hash: sha256(data), sig });
        return data;
      },
      log(...args) {
        const text = args.map((a) => (typeof a === "string" ? a : Buffer.isBuffer(a) ? a.toString() : JSON.stringify(a))).join(" ");
        fs.writeSync(logFd, text.endsWith("\n") ? text : text + "\n");
      },
      noteCommand(command) {
        lastCommand = command;
        fs.writeSync(logFd, `$ ${command}\n`);
        engine.reporter.command(node.name, command);
      },
      trustOutputHash(sha256) {
        trustedHash = sha256;
      },
      trackChild(pid) {
        engine.children.add(pid);
        return () => engine.children.delete(pid);
      },
    };
    let value: unknown;
    try {
      value = await runInContext(ctx, () => node.builder(ctx));
      if (this.controller.signal.aborted) throw this.controller.signal.reason;
    } catch (error) {
      fs.closeSync(logFd);
      this.discard(workDir);
      throw this.asBuildError(node.name, error, lastCommand, logPath);
    }
    fs.closeSync(logFd);
    // Commit: everything below is synchronous, so a signal cannot land half-way.
    const final = outputPath(layout, node.name);
    const kind = statSignature(out).kind;
    const output: TargetState["output"] = kind === "missing" ? "none" : kind === "dir" ? "dir" : kind === "symlink" ? "symlink" : "file";
    const valueJson = value === undefined ? null : JSON.parse(stableStringify(value));
    const outHash = output === "none" ? undefined : output === "file" && trustedHash ? trustedHash : contentHash(out);
    const stamp = sha256(`${outHash ?? ""}\0${stableStringify(valueJson)}`);
    const old = path.join(workDir, "old");
    if (fs.existsSync(final) || isSymlink(final)) fs.renameSync(final, old);
    if (output !== "none") fs.renameSync(out, final);
    const state: TargetState = {
      v: STATE_VERSION,
      identity: node.identity,
      stamp,
      output,
      sig: output === "none" ? "" : statSignature(final).sig,
      value: valueJson,
      deps: [...deps.values()],
      builtAt: new Date().toISOString(),
      seconds: Math.round(performance.now() - started) / 1000,
      outHash: outHash ?? null,
      precious: node.precious,
    };
    writeState(layout, node.name, state);
    this.discard(workDir);
    return this.resultOf(node, state, true);
  }

  private asBuildError(name: string, error: unknown, command: string | undefined, logPath: string): unknown {
    if (error instanceof InterruptedError || error instanceof CycleError) return error;
    if (error instanceof BuildError && error.target !== name) return error; // a dependency's failure, already described
    const e = error as { message?: string; exitCode?: number | null; fix?: string; command?: string };
    let tail: string[] = [];
    try {
      tail = fs.readFileSync(logPath, "utf8").split("\n").filter((l) => l.length).slice(-15);
    } catch { /* no log */ }
    const processFailure = typeof e?.exitCode === "number";
    // A CrecipeError already says what went wrong; a bare process failure gets the exit code.
    const message = processFailure && !(error instanceof CrecipeError)
      ? `command failed with exit code ${e.exitCode}`
      : String(e?.message ?? error).split("\n")[0];
    return new BuildError(message, {
      target: name,
      command: e?.command ?? (processFailure ? command : undefined),
      exitCode: processFailure ? e.exitCode : undefined,
      logPath: this.show(logPath),
      logTail: tail,
      fix: e?.fix,
      cause: error,
    });
  }

  /** Remove temp dirs left by processes that died (kill -9, power loss). */
  private sweptTemps = false;
  private sweepTemps(tmpRoot: string): void {
    if (this.sweptTemps) return;
    this.sweptTemps = true;
    let names: string[] = [];
    try {
      names = fs.readdirSync(tmpRoot);
    } catch {
      return;
    }
    for (const name of names) {
      const pid = Number(name.split(".").at(-2));
      if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
      fs.rmSync(path.join(tmpRoot, name), { recursive: true, force: true });
    }
  }

  private discard(dir: string): void {
    this.temps.delete(dir);
    removeTree(dir);
  }

  private show(p: string): string {
    const cwd = process.cwd() + path.sep;
    return p.startsWith(cwd) ? p.slice(cwd.length) : p;
  }

  /**
   * Ctrl-C: kill the children we started (their whole process groups), drop temp outputs,
   * release locks, and exit. Outputs and state are untouched: commits are synchronous.
   */
  installSignalHandlers(): () => void {
    const handler = (signal: NodeJS.Signals) => {
      this.controller.abort(new InterruptedError(signal));
      for (const pid of this.children) {
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, "SIGKILL");
          } catch { /* gone */ }
        }
      }
      for (const dir of this.temps) removeTree(dir);
      for (const held of this.locks) held.release();
      process.stderr.write(`\ncrecipe: interrupted by ${signal}; outputs and state left as they were\n`);
      process.exit(signal === "SIGINT" ? 130 : 143);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
    return () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    };
  }
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** rm -rf that also copes with read-only directories inside (a built tree may have them). */
export function removeTree(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    const chmodAll = (p: string) => {
      try {
        const st = fs.lstatSync(p);
        if (st.isDirectory()) {
          fs.chmodSync(p, 0o700);
          for (const name of fs.readdirSync(p)) chmodAll(path.join(p, name));
        }
      } catch { /* ignore */ }
    };
    chmodAll(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
