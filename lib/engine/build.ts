/**
 * build(): make targets current. For each target asked for (and, recursively, what it
 * needs), in this chain:
 *   result()      once per target per run: the shared promise every asker awaits;
 *   bringUpToDate() decide (dirty.ts) and either reuse the state or rebuild;
 *   rebuildLocked() under the target's lock (another process may have built it), run it;
 *   runBuilder()  run the builder into a temp dir and commit (commit.ts).
 * Dependencies are found while building: whatever a builder needs through its context.
 */
import { setMaxListeners } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { makeContext, runInContext } from "./context.ts";
import { fitName, removeTree, removeTreeSoon } from "./io.ts";
import { commit } from "./commit.ts";
import { restateManifest } from "./manifest.ts";
import { WaitGraph } from "./cycles.ts";
import { isDirty, type Verdict } from "./dirty.ts";
import { describeRef } from "./sources.ts";
import { BuildError, CrecipeError, CycleError, describeFailure, InterruptedError } from "./errors.ts";
import { lock, type Lock, sweepLockDir, sweepTempDir, tryLock, waitMessage } from "./lock.ts";
import { holderId, self } from "./holder.ts";
import { watchForCycles } from "./waits.ts";
import { cpuCount, dropThreads } from "./threads.ts";
import { countBuild, declaredLate, isBuilding, isNode, lookup, markBuilding } from "./node.ts";
import { type Candidate, cachedDeps, cacheKey, portableIdentity, type RemoteCache, type Upstream } from "./remote.ts";
import { hostContentHash, hostSignature } from "./hash.ts";
import { type BuildEvent, criticalPath, type DistributiveOmit, type EventSink } from "./events.ts";
import { consoleReporter, formatFailure, type Reporter } from "./report.ts";
import { upToDate, writeSummary } from "./summary.ts";
import { type Dep, type Layout, layout, lockFile, logFile, outDirFailure, outputPath, readState, type TargetState, tmpDir, trashDir, writeState } from "./state.ts";
import type { Node, Result } from "./types.ts";

export type { Verdict };
export { removeTree };

/** How build() builds: where, how many at once, what it prints. */
export interface BuildOptions {
  /** Out dir (default "out" under the current directory). */
  outDir?: string;
  /** Targets built at once (default: number of CPUs). */
  jobs?: number;
  /** Show the commands run. */
  verbose?: boolean;
  /** Print only failures. */
  quiet?: boolean;
  /** Print why each target rebuilds. */
  why?: boolean;
  /** Compare every tree output with its manifest, not only its top directory (slower: a stat per entry). */
  check?: boolean;
  /** Install SIGINT/SIGTERM handlers that clean up and exit (the CLI does). */
  handleSignals?: boolean;
  /** Called with every event of the run (events.ts): what `--json` writes, one per line. */
  onEvent?: EventSink;
  /**
   * A shared cache (`--cache`): a shared target that must be built is first looked up
   * there by the key of all its inputs, and taken from it when found; what is built here
   * is stored there (unless the cache is read-only). See engine/remote.ts.
   */
  cache?: RemoteCache;
}

/** What the engine takes besides BuildOptions: who prints progress (the CLI's verbs use a quiet one). */
export interface EngineOptions extends BuildOptions {
  reporter?: Reporter;
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
/** Build several targets at once; their results in the same order. */
export async function build(nodes: readonly Node[], options?: BuildOptions): Promise<Result[]>;
export async function build(nodes: Node | readonly Node[], options: BuildOptions = {}): Promise<Result | Result[]> {
  const list = isNode(nodes) ? [nodes] : [...nodes];
  for (const n of list) {
    if (!isNode(n)) throw new CrecipeError(`build() takes targets; got ${typeof n}`, { fix: "pass nodes returned by fs(), target(), image(), …" });
  }
  countBuild();
  const engine = new Engine(options);
  const started = engine.started;
  const unchanged = options.check ? undefined : upToDate(engine.layout, list);
  if (unchanged) {
    engine.counts.upToDate = unchanged.count;
    if (engine.emitting) {
      for (const name of unchanged.names) {
        engine.emit({ event: "queued", target: name });
        engine.emit({ event: "upToDate", target: name, reason: "nothing changed since the last run" });
      }
    }
    engine.finishRun();
    return isNode(nodes) ? unchanged.results[0] : unchanged.results;
  }
  markBuilding(1);
  const uninstall = options.handleSignals ? engine.installSignalHandlers() : () => {};
  try {
    const settled = await Promise.allSettled(list.map((n) => engine.result(n, undefined)));
    await engine.stored();
    const failed = settled.find((s) => s.status === "rejected") as PromiseRejectedResult | undefined;
    engine.finishRun();
    if (failed) throw outDirFailure(failed.reason, engine.layout, { building: true }) ?? failed.reason;
    const results = settled.map((s) => (s as PromiseFulfilledResult<Result>).value);
    engine.summarize(list);
    return isNode(nodes) ? results[0] : results;
  } finally {
    markBuilding(-1);
    uninstall();
    if (!isBuilding()) dropThreads(); // warmed for a target that did not get to use them
  }
}

/** The parent chain of a need, for indentation and cycle reports. */
interface Frame {
  name: string;
  depth: number;
}

/**
 * A building target's hold on a job slot. It lets go while it waits for dependencies (the
 * first of several concurrent waits lets go, the last to end takes a slot again), so a
 * slot has one holder at a time and -j counts builders that run, not ones that wait.
 */
interface Hold {
  /** The slot held, while `state` is "held". */
  n: number;
  state: "held" | "released" | "acquiring";
  /** Dependencies being waited for now. */
  waits: number;
  /** When the slot was let go, and the time spent without one so far. */
  since: number;
  waited: number;
  regain?: Promise<void>;
}

/** The job slots (-j N), numbered from 0: a trace draws one lane per slot. */
class Slots {
  private waiting: ((slot: number) => void)[] = [];
  private readonly free: number[];
  constructor(count: number) {
    this.free = Array.from({ length: count }, (_, i) => count - 1 - i); // slot 0 is taken first
  }
  async acquire(): Promise<number> {
    const slot = this.free.pop();
    if (slot !== undefined) return slot;
    return await new Promise<number>((r) => this.waiting.push(r));
  }
  release(slot: number): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }
}

export class Engine {
  readonly layout: Layout;
  readonly reporter: Reporter;
  readonly counts = { built: 0, upToDate: 0, failed: 0, cutoff: 0, fetched: 0 };
  readonly started = performance.now();
  private readonly slots: Slots;
  private readonly sink: EventSink | undefined;
  /** Targets that ended (for the critical path), and why each rebuilt target did. */
  private readonly done = new Map<string, { end: number; ms: number; deps: string[] }>();
  private readonly ended = new Set<string>();
  private readonly rebuilt: { target: string; reason: string }[] = [];
  private readonly inflight = new Map<string, Promise<Result>>();
  private readonly waits = new WaitGraph();
  private readonly locks = new Set<Lock>();
  private readonly temps = new Set<string>();
  private readonly children = new Set<number>();
  private readonly controller = new AbortController();
  private firstFailure: unknown;
  private readonly warned = new Set<string>();
  /** Outputs being stored in the shared cache; the run ends when they are. */
  private readonly storing: Promise<void>[] = [];

  constructor(private readonly options: EngineOptions = {}) {
    // Every running command and lock wait listens for the build's stop: many at once is
    // the ordinary case, not a leak (Node warns past ten).
    setMaxListeners(0, this.controller.signal);
    // Builders and their commands create files with the same modes whatever the
    // caller's umask: outputs must not depend on who ran the build.
    try {
      process.umask(0o022);
    } catch { /* a runtime without umask: modes are set explicitly where it matters */ }
    this.layout = layout(options.outDir ?? "out");
    this.reporter = options.reporter ?? consoleReporter({ verbose: options.verbose, quiet: options.quiet, why: options.why });
    const jobs = Math.max(1, options.jobs ?? cpuCount());
    this.slots = new Slots(jobs);
    this.sink = options.onEvent;
    this.emit({ event: "run", start: new Date(performance.timeOrigin + this.started).toISOString(), pid: process.pid, jobs, runtime: "Deno" in globalThis ? "deno" : "node" });
  }

  /** Someone listens to events (building them costs nothing otherwise). */
  get emitting(): boolean {
    return this.sink !== undefined;
  }

  /** Send an event (its version and time added). */
  emit(event: DistributiveOmit<BuildEvent, "v" | "t">): void {
    if (!this.sink) return;
    this.sink({ v: 1, t: Math.round((performance.now() - this.started) * 1000) / 1000, ...event } as BuildEvent);
  }

  /** The end of a run: the summary line, why each target rebuilt (-v), the critical path, the summary event. */
  finishRun(): void {
    const seconds = (performance.now() - this.started) / 1000;
    this.reporter.summary(this.counts, seconds);
    if (this.options.verbose) for (const { target, reason } of this.rebuilt) this.reporter.info(`rebuilt ${target}: ${reason}`);
    const critical = this.counts.built ? criticalPath(this.done) : undefined;
    if (critical && seconds > 3 && critical.targets.length) {
      const chain = critical.targets.length > 6 ? [...critical.targets.slice(0, 2), "…", ...critical.targets.slice(-3)] : critical.targets;
      this.reporter.info(`critical path ${(critical.ms / 1000).toFixed(2)} s: ${chain.join(" → ")} (slowest: ${critical.slowest.target}, ${(critical.slowest.ms / 1000).toFixed(2)} s)`);
    }
    this.emit({ event: "summary", ...this.counts, seconds: Math.round(seconds * 1000) / 1000, rebuilt: this.rebuilt, ...(critical ? { criticalPath: critical } : {}) });
  }

  /** The one terminal event of a target. */
  private end(event: DistributiveOmit<Extract<BuildEvent, { event: "upToDate" | "built" | "failed" }>, "v" | "t">): void {
    if (this.ended.has(event.target)) return;
    this.ended.add(event.target);
    this.emit(event);
  }

  /** Everything this run made current, for the next run's no-op fast path (summary.ts). */
  summarize(roots: readonly Node[]): void {
    writeSummary(this.layout, roots, this.inflight.keys());
  }

  /** `node`'s result for this run: made current once, shared by everyone who asks. */
  async result(node: Node, from: Frame | undefined): Promise<Result> {
    if (from) {
      const order = [...this.inflight.keys()];
      this.waits.add(from.name, node.name, (name) => order.indexOf(name));
    }
    try {
      let promise = this.inflight.get(node.name);
      if (!promise) {
        this.emit(from ? { event: "queued", target: node.name, parent: from.name } : { event: "queued", target: node.name });
        promise = this.bringUpToDate(node, (from?.depth ?? -1) + 1);
        this.inflight.set(node.name, promise);
      }
      return await promise;
    } finally {
      if (from) this.waits.remove(from.name, node.name);
    }
  }

  /** Is `node` dirty, and why (the engine's view: upstream targets are made current). */
  check(node: Node, upstream: (dep: Node) => Promise<string>): Promise<Verdict> {
    return isDirty(node, readState(this.layout, node.name), { layout: this.layout, deep: this.options.check, show: (p) => this.show(p) }, upstream);
  }

  private async bringUpToDate(node: Node, depth: number): Promise<Result> {
    try {
      if (this.firstFailure) throw this.firstFailure;
      const frame = { name: node.name, depth };
      for (const ref of node.sources) {
        if (ref.kind !== "let" && ref.kind !== "var") continue;
        this.warnOnce(
          `mutable:${node.name}:${ref.key}`,
          `${node.name}: its builder reads ${describeRef(ref)}, a top-level ${ref.kind}: crecipe sees its declaration, not the value it holds when the builder runs; make it a const, or pass the value in the target's options`,
        );
      }
      const verdict = await this.decide(node, frame);
      if (!verdict.dirty) return this.clean(node, verdict.state!, "builder, options, inputs and upstream unchanged");
      return await this.rebuildLocked(node, verdict.reason, frame, verdict.state?.stamp);
    } catch (error) {
      if (this.emitting && !this.ended.has(node.name)) this.end({ event: "failed", target: node.name, error: this.failureFields(error, node.name) });
      throw error;
    }
  }

  /** A target found up to date. */
  private clean(node: Node, state: TargetState, reason: string): Result {
    this.counts.upToDate++;
    const now = performance.now() - this.started;
    this.done.set(node.name, { end: now, ms: 0, deps: state.deps.flatMap((d) => ("target" in d ? [d.target] : [])) });
    this.end({ event: "upToDate", target: node.name, reason });
    return this.resultOf(node, state, false);
  }

  /** What a failed event says of `error`. */
  private failureFields(error: unknown, target: string): Extract<BuildEvent, { event: "failed" }>["error"] {
    if (error instanceof BuildError) {
      const fields = {
        message: error.message,
        ...(error.command !== undefined ? { command: error.command } : {}),
        ...(typeof error.exitCode === "number" ? { exitCode: error.exitCode } : {}),
        ...(error.signal !== undefined ? { signal: error.signal } : {}),
        ...(error.fix !== undefined ? { fix: error.fix } : {}),
        ...(error.logPath !== undefined ? { log: error.logPath } : {}),
        ...(error.logTail?.length ? { logTail: error.logTail } : {}),
      };
      return { ...fields, ...(error.target !== target ? { because: error.target } : {}), text: formatFailure(error) };
    }
    const message = error instanceof Error ? error.message : String(error);
    return { message, text: message };
  }

  /** isDirty, plus what the engine does with its findings: warn once, store refreshed signatures. */
  private async decide(node: Node, frame: Frame): Promise<Verdict> {
    const verdict = await this.check(node, (dep) => this.result(dep, frame).then((r) => r.stamp));
    if (verdict.unreadable) this.warnOnce(`state:${node.name}`, `state of ${node.name} is unreadable (${verdict.unreadable}); rebuilding it`);
    if (verdict.handEdit) this.warnOnce(`edit:${node.name}`, `${verdict.handEdit.path} was modified outside crecipe; rebuilding it (${verdict.handEdit.what})`);
    if (!verdict.dirty && verdict.refresh) this.refreshSignatures(node.name, verdict.state!, verdict.refresh);
    return verdict;
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.reporter.warn(message);
  }

  private refreshSignatures(name: string, seen: TargetState, refreshed: NonNullable<Verdict["refresh"]>): void {
    let held;
    try {
      held = tryLock(lockFile(this.layout, name));
    } catch {
      return; // a read-only out dir: the next run checks the content again, which is still right
    }
    if (!("release" in held)) return; // someone is building it: they will write a fresh state
    try {
      const read = readState(this.layout, name);
      if (!read.ok || read.state.stamp !== seen.stamp || read.state.builtAt !== seen.builtAt) return;
      const state = read.state;
      // A tree's files whose stat alone changed: its manifest takes their new stat, which
      // layers compare with each file they read.
      if (refreshed.manifest) restateManifest(refreshed.manifest.path, refreshed.manifest.restated);
      if (refreshed.output) state.sig = refreshed.output;
      for (const [index, sig] of refreshed.deps) (state.deps[index] as { sig: string }).sig = sig;
      if (refreshed.output || refreshed.deps.size) writeState(this.layout, name, state);
    } catch {
      // A read-only out dir: the next run checks the content again, which is still right.
    } finally {
      held.release();
    }
  }

  private resultOf(node: Node, state: TargetState, built: boolean): Result {
    const result: Result = {
      name: node.name,
      path: state.output === "none" ? undefined : outputPath(this.layout, node.name),
      value: state.value,
      stamp: state.stamp,
      built,
    };
    if (state.manifest) result.manifest = path.join(this.layout.stateDir, "tree", state.manifest);
    return result;
  }

  private async rebuildLocked(node: Node, reason: string, frame: Frame, previousStamp: string | undefined): Promise<Result> {
    const lockPath = lockFile(this.layout, node.name);
    const lockOf = (name: string) => lockFile(this.layout, name);
    const cycles = watchForCycles(node.name, { lockOf, edges: () => this.waits.edges(), signal: this.controller.signal });
    let held: Lock;
    try {
      held = await lock(lockPath, {
        signal: this.controller.signal,
        onWait: (holder) => this.reporter.info(waitMessage(node.name, holder, this.show(lockPath))),
        onTakeover: (what) => this.reporter.warn(`${node.name}: ${what}`),
        onPoll: () => cycles.poll(),
      });
    } finally {
      cycles.end();
    }
    this.locks.add(held);
    try {
      if (held.waited) {
        // The other process may have built it meanwhile: look again.
        const again = await this.decide(node, frame);
        if (!again.dirty) return this.clean(node, again.state!, "built meanwhile by another crecipe");
      }
      if (this.firstFailure) throw this.firstFailure;
      if (this.options.cache && node.shared) {
        const fetched = await this.fromCache(node, reason, frame, previousStamp);
        if (fetched) return fetched;
      }
      this.reporter.start(node.name, frame.depth, reason);
      const slot: Hold = { n: await this.slots.acquire(), state: "held", waits: 0, since: 0, waited: 0 };
      const begun = performance.now();
      this.emit({ event: "started", target: node.name, reason, slot: slot.n });
      try {
        const { result, deps, state } = await this.runBuilder(node, frame, slot);
        if (this.options.cache && node.shared && !this.options.cache.readOnly) this.storing.push(this.toCache(node, state));
        this.made(node, { reason, begun, waited: slot.waited, deps, stamp: result.stamp, previousStamp, path: result.path });
        return result;
      } catch (error) {
        const own = !(error instanceof BuildError) || error.target === node.name;
        if (own && !(error instanceof InterruptedError)) this.counts.failed++;
        this.firstFailure ??= error;
        throw error;
      } finally {
        if (slot.state === "acquiring") await slot.regain;
        if (slot.state === "held") this.slots.release(slot.n);
        this.reporter.finish(node.name, !this.firstFailure);
      }
    } finally {
      held.release();
      this.locks.delete(held);
    }
  }

  /**
   * `node` from the shared cache, if a build of it there had the same inputs: each
   * dependency list recorded for its identity is brought up to date here (its targets
   * built or fetched in turn, its host files hashed), and the key those give is asked
   * for. The output is committed as a build's would be, and must hash to the stamp it had.
   * Any trouble with the cache is a miss (said once), never a failed or a wrong build.
   */
  private async fromCache(node: Node, reason: string, frame: Frame, previousStamp: string | undefined): Promise<Result | undefined> {
    const cache = this.options.cache!;
    const identity = portableIdentity(node);
    let candidates: Candidate[];
    try {
      candidates = await cache.candidates(identity, node.name);
    } catch (error) {
      this.cacheTrouble(error);
      return undefined;
    }
    for (const candidate of candidates) {
      const deps = await this.depsNow(candidate, frame);
      if (!deps || cacheKey(identity, deps) !== candidate.key) continue;
      const begun = performance.now();
      const { workDir, out } = this.workDir(node);
      const slot = await this.slots.acquire(); // a download and an unpack take a job slot, as a build does
      this.emit({ event: "started", target: node.name, reason: `${reason}; looked up in the cache`, slot });
      try {
        const fetched = await cache.fetch(candidate.key, node.name, out, this.upstream(deps));
        if (!fetched) continue;
        if (this.controller.signal.aborted) throw this.controller.signal.reason;
        this.reporter.start(node.name, frame.depth, `${reason}; taken from the cache`);
        const state = await commit(this.layout, node, { workDir, out, value: fetched.value, deps, trustedHash: fetched.trustedHash, expectedStamp: fetched.stamp, started: begun }, this.controller.signal);
        const result = this.resultOf(node, state, true);
        const names = deps.flatMap((d) => ("target" in d ? [d.target] : []));
        this.made(node, { reason: `${reason}; taken from the cache ${cache.where}`, begun, deps: names, stamp: state.stamp, previousStamp, path: result.path, cache: cache.where });
        this.reporter.finish(node.name, true);
        return result;
      } catch (error) {
        if (error instanceof InterruptedError || this.controller.signal.aborted) throw error;
        this.cacheTrouble(error, node.name);
      } finally {
        this.slots.release(slot);
        this.discard(workDir);
      }
    }
    return undefined;
  }

  /**
   * Book a target just made, built here or taken from the cache: the counts, what the
   * summary lists as rebuilt, its time for the critical path, and the "built" event.
   */
  private made(node: Node, how: { reason: string; begun: number; waited?: number; deps: string[]; stamp: string; previousStamp?: string; path?: string; cache?: string }): void {
    if (how.cache) this.counts.fetched++;
    else this.counts.built++;
    const cutoff = how.previousStamp !== undefined && how.stamp === how.previousStamp;
    if (cutoff) this.counts.cutoff++;
    this.rebuilt.push({ target: node.name, reason: how.reason });
    const now = performance.now();
    const ms = Math.round((now - how.begun - (how.waited ?? 0)) * 1000) / 1000;
    this.done.set(node.name, { end: now - this.started, ms, deps: how.deps });
    if (!this.emitting) return;
    let bytes: number | undefined;
    try {
      const st = how.path ? fs.statSync(how.path) : undefined;
      if (st?.isFile()) bytes = st.size;
    } catch { /* gone meanwhile */ }
    this.end({ event: "built", target: node.name, ms, stamp: how.stamp, cutoff, ...(bytes !== undefined ? { bytes } : {}), deps: how.deps, ...(how.cache ? { cache: how.cache } : {}) });
  }

  /** A candidate's dependencies as they are here (targets made current first), or undefined where one cannot be. */
  private async depsNow(candidate: Candidate, frame: Frame): Promise<Dep[] | undefined> {
    const nodes = candidate.deps.map((dep) => ("target" in dep ? lookup(dep.target) : undefined));
    if (candidate.deps.some((dep, i) => "target" in dep && !nodes[i])) return undefined; // the recipe here has no such target: another version of it
    // All at once (a builder would ask one by one): they are looked up, fetched or built side by side.
    return await Promise.all(candidate.deps.map(async (dep, i): Promise<Dep> => {
      if ("target" in dep) return { target: dep.target, stamp: (await this.result(nodes[i]!, frame)).stamp };
      const file = dep.file.startsWith("./") ? path.resolve(dep.file) : dep.file;
      const { kind, sig } = hostSignature(file);
      return { file, hash: kind === "missing" ? null : hostContentHash(file) ?? null, sig };
    }));
  }

  /** Store what was just built in the shared cache (a failure is said once; the build stands). */
  private async toCache(node: Node, state: TargetState): Promise<void> {
    const cache = this.options.cache!;
    const identity = portableIdentity(node);
    const { workDir, scratch } = this.workDir(node);
    try {
      await cache.store({
        path: outputPath(this.layout, node.name),
        tmp: scratch,
        upstream: this.upstream(state.deps),
        identity,
        key: cacheKey(identity, state.deps),
        target: node.name,
        deps: cachedDeps(state.deps),
        stamp: state.stamp,
        value: state.value,
        outHash: state.outHash,
        output: state.output,
      });
    } catch (error) {
      this.cacheTrouble(error, node.name, "store");
    } finally {
      this.discard(workDir);
    }
  }

  /** The file outputs of the targets among `deps`, with their sha256 (a file output's hash). */
  private upstream(deps: readonly Dep[]): Upstream[] {
    const found: Upstream[] = [];
    for (const dep of deps) {
      if (!("target" in dep)) continue;
      const read = readState(this.layout, dep.target);
      if (!read.ok || read.state.output !== "file" || read.state.stamp !== dep.stamp || !/^[0-9a-f]{64}$/.test(read.state.outHash ?? "")) continue;
      found.push({ target: dep.target, path: outputPath(this.layout, dep.target), sha256: read.state.outHash! });
    }
    return found;
  }

  /** Wait for the outputs being stored in the shared cache. */
  async stored(): Promise<void> {
    await Promise.all(this.storing);
  }

  private cacheTrouble(error: unknown, target?: string, doing: "fetch" | "store" = "fetch"): void {
    const message = error instanceof Error ? error.message : String(error);
    const where = this.options.cache!.where;
    this.warnOnce(`cache:${doing}:${target ?? ""}:${message}`, doing === "store"
      ? `${target}: not stored in the cache ${where}: ${message} (the build itself is fine)`
      : `${target ? `${target}: ` : ""}the cache ${where} did not serve${target ? " it" : ""}: ${message}; building instead`);
  }

  /** A temp dir for building `node` (its output goes to `out` inside), removed by discard(). */
  private workDir(node: Node): { workDir: string; out: string; scratch: string } {
    const tmpRoot = tmpDir(this.layout);
    this.sweepTemps(tmpRoot);
    // Named after its holder (holder.ts), so a sweeper keeps it while this process may be alive.
    const suffix = `.${holderId(self)}.${Math.random().toString(36).slice(2, 8)}`;
    const workDir = path.join(tmpRoot, fitName(node.name, 255 - suffix.length) + suffix);
    const scratch = path.join(workDir, "scratch");
    fs.mkdirSync(scratch, { recursive: true });
    this.temps.add(workDir);
    return { workDir, out: path.join(workDir, "out"), scratch };
  }

  private async runBuilder(node: Node, frame: Frame, slot: Hold): Promise<{ result: Result; deps: string[]; state: TargetState }> {
    const { workDir, out, scratch } = this.workDir(node);
    const logPath = logFile(this.layout, node.name);
    fs.mkdirSync(path.dirname(logPath), { recursive: true });
    const logFd = fs.openSync(logPath, "w");
    const started = performance.now();
    const recorded = makeContext({
      name: node.name,
      out,
      tmp: scratch,
      outDir: this.layout.outDir,
      finalPath: outputPath(this.layout, node.name),
      signal: this.controller.signal,
      verbose: Boolean(this.options.verbose),
      logFd,
      ensure: async (dep) => {
        if (declaredLate(dep.name)) {
          this.warnOnce(`late:${dep.name}`, `${dep.name} was declared while ${node.name} was building; declare it when the recipe loads, or every run rebuilds ${node.name}`);
        }
        // Waiting for a dependency does not hold a job slot.
        slot.waits++;
        if (slot.state === "acquiring") await slot.regain;
        if (slot.state === "held") {
          this.slots.release(slot.n);
          slot.state = "released";
          slot.since = performance.now();
          this.emit({ event: "waiting", target: node.name, for: dep.name });
        }
        try {
          return await this.result(dep, frame);
        } finally {
          if (--slot.waits === 0 && slot.state === "released") {
            slot.state = "acquiring";
            slot.regain = this.slots.acquire().then((n) => {
              slot.n = n;
              slot.state = "held";
              slot.waited += performance.now() - slot.since;
              this.emit({ event: "resumed", target: node.name, slot: n });
            });
          }
          if (slot.state === "acquiring") await slot.regain;
        }
      },
      onCommand: (command) => {
        this.reporter.command(node.name, command);
        this.emit({ event: "command", target: node.name, command });
      },
      onWarning: (message) => this.warnOnce(`${node.name}:${message}`, `${node.name}: ${message}`),
      trackChild: (pid) => {
        this.children.add(pid);
        return () => this.children.delete(pid);
      },
    });
    let value: unknown;
    try {
      value = await runInContext(recorded.ctx, () => node.builder(recorded.ctx));
      if (this.controller.signal.aborted) throw this.controller.signal.reason;
    } catch (error) {
      fs.closeSync(logFd);
      this.discard(workDir);
      throw this.asBuildError(node.name, error, recorded.lastCommand(), logPath, workDir);
    }
    fs.closeSync(logFd);
    try {
      const state = await commit(this.layout, node, {
        workDir,
        out,
        value,
        deps: [...recorded.deps.values()],
        trustedHash: recorded.trustedHash(),
        started,
      }, this.controller.signal);
      return { result: this.resultOf(node, state, true), deps: [...recorded.deps.values()].flatMap((d) => ("target" in d ? [d.target] : [])), state };
    } catch (error) {
      throw this.asBuildError(node.name, error, undefined, logPath, workDir);
    } finally {
      this.discard(workDir);
    }
  }

  /**
   * What a builder's failure becomes: a BuildError for this target, with the command, how
   * it ended and the log; a dependency's, a cycle's or an interruption's error as it is;
   * a file of the out dir that cannot be written (outside the builder's own `workDir`)
   * as an OutDirError.
   */
  private asBuildError(name: string, error: unknown, command: string | undefined, logPath: string, workDir: string): unknown {
    if (error instanceof InterruptedError || error instanceof CycleError) return error;
    if (error instanceof BuildError && error.target !== name) return error; // a dependency's failure, already described
    const denied = outDirFailure(error, this.layout, { building: true, own: workDir });
    if (denied) return denied;
    const failure = describeFailure(error, command);
    let tail: string[] = [];
    try {
      tail = fs.readFileSync(logPath, "utf8").split("\n").filter((l) => l.length).slice(-15);
    } catch { /* no log */ }
    return new BuildError(failure.message, { ...failure, target: name, logPath: this.show(logPath), logTail: tail, cause: error });
  }

  /**
   * Remove temp dirs (and lock-dir records) left by processes that died (kill -9, power
   * loss): only those whose holder is provably dead; one in another pid namespace may be alive.
   */
  private sweptTemps = false;
  private sweepTemps(tmpRoot: string): void {
    if (this.sweptTemps) return;
    this.sweptTemps = true;
    sweepLockDir(path.join(this.layout.stateDir, "lock"));
    sweepTempDir(tmpRoot);
    sweepTempDir(trashDir(this.layout));
  }

  /** Remove a temp dir: a heavy one (a large output it replaced) in the background. */
  private discard(dir: string): void {
    this.temps.delete(dir);
    removeTreeSoon(dir, trashDir(this.layout));
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
      process.exit(128 + (os.constants.signals[signal] ?? 15));
    };
    for (const signal of HANDLED) process.on(signal, handler);
    return () => {
      for (const signal of HANDLED) process.off(signal, handler);
    };
  }

}

/** Signals that stop a build: Ctrl-C, kill, a closed terminal, Ctrl-\\. */
const HANDLED: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
