/** Where the time went: --json events, --trace, the cache report and the critical path. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { cli, crecipe, modUrl, read, repo, tempDir, write } from "../helpers.ts";

const deno = path.join(repo, "node_modules", ".bin", "deno");

/** a → b → c, and d alone; `fail` makes b fail. */
function project(options: { fail?: boolean; slow?: number } = {}): string {
  const dir = tempDir();
  write(dir, "r.ts", `
import { file, $ } from ${JSON.stringify(modUrl)};
import { readFileSync, writeFileSync } from "node:fs";
export const a = file("a", async (out) => { await $\`sleep ${options.slow ?? 0.05}\`; writeFileSync(out, "a"); });
export const b = file("b", async (out, ctx) => {
  const text = readFileSync(await ctx.need(a), "utf8");
  await $\`${options.fail ? "sh -c 'echo broken >&2; exit 3'" : "true"}\`;
  writeFileSync(out, text + "b");
});
export const c = file("c", async (out, ctx) => writeFileSync(out, readFileSync(await ctx.need(b), "utf8") + "c"));
export const d = file("d", async (out) => { await $\`sleep 0.1\`; writeFileSync(out, "d"); });
export default [c, d];
`);
  return dir;
}

type Event = Record<string, unknown> & { v: number; t: number; event: string; target?: string };

function events(file: string): Event[] {
  return fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

const TERMINAL = new Set(["upToDate", "built", "failed"]);

/** Every event has v 1 and a time that never goes back; run first, summary last; each target queued once and ended once. */
function checkStream(list: Event[]): Map<string, Event> {
  assert.ok(list.length >= 2);
  assert.equal(list[0].event, "run");
  assert.match(String(list[0].start), /^\d{4}-\d\d-\d\dT/);
  assert.equal(list.at(-1)!.event, "summary");
  let last = 0;
  const queued = new Map<string, number>();
  const ended = new Map<string, Event>();
  for (const e of list) {
    assert.equal(e.v, 1);
    assert.ok(e.t >= last, `time went back at ${JSON.stringify(e)}`);
    last = e.t;
    if (e.event === "queued") queued.set(e.target!, (queued.get(e.target!) ?? 0) + 1);
    if (TERMINAL.has(e.event)) {
      assert.ok(!ended.has(e.target!), `${e.target} ended twice`);
      ended.set(e.target!, e);
    }
  }
  for (const [target, n] of queued) assert.equal(n, 1, `${target} queued ${n} times`);
  assert.deepEqual([...ended.keys()].sort(), [...queued.keys()].sort(), "every queued target ends once");
  return ended;
}

describe("--json", () => {
  it("writes one event per line: every target queued once and ended once, the summary last", () => {
    const dir = project({ slow: 0.4 });
    const r = crecipe(dir, ["r.ts", "--json=events.ndjson"]);
    assert.equal(r.status, 0, r.stderr);
    const list = events(path.join(dir, "events.ndjson"));
    const ended = checkStream(list);
    assert.deepEqual([...ended.keys()].sort(), ["a", "b", "c", "d"]);
    for (const e of ended.values()) assert.equal(e.event, "built");
    assert.deepEqual(ended.get("b")!.deps, ["a"]);
    const started = list.find((e) => e.event === "started" && e.target === "a")!;
    assert.equal(started.reason, "it was never built");
    assert.ok(list.some((e) => e.event === "command" && e.target === "d" && e.command === "sleep 0.1"));
    const summary = list.at(-1)!;
    assert.equal(summary.built, 4);
    assert.deepEqual((summary.rebuilt as { target: string }[]).map((x) => x.target).sort(), ["a", "b", "c", "d"]);
    assert.deepEqual((summary.criticalPath as { targets: string[] }).targets.slice(-3), ["a", "b", "c"]);
  });

  it("a no-op says every target is up to date, with the reason", () => {
    const dir = project();
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    const r = crecipe(dir, ["r.ts", "--json=noop.ndjson"]);
    assert.equal(r.status, 0, r.stderr);
    const ended = checkStream(events(path.join(dir, "noop.ndjson")));
    assert.deepEqual([...ended.keys()].sort(), ["a", "b", "c", "d"]);
    for (const e of ended.values()) {
      assert.equal(e.event, "upToDate");
      assert.ok(String(e.reason).length > 0);
    }
  });

  it("a failing target's event carries the block a person sees; its dependent's names it", () => {
    const dir = project({ fail: true });
    const r = crecipe(dir, ["r.ts", "--json=fail.ndjson"]);
    assert.equal(r.status, 1);
    const ended = checkStream(events(path.join(dir, "fail.ndjson")));
    const b = ended.get("b")!;
    assert.equal(b.event, "failed");
    const error = b.error as Record<string, unknown>;
    assert.equal(error.exitCode, 3);
    assert.match(String(error.command), /exit 3/);
    assert.equal((error.logTail as string[]).at(-1), "broken");
    assert.match(String(error.text), /^crecipe: FAILED b: /);
    assert.ok(r.stderr.includes(String(error.text)), "the same block as printed");
    const c = ended.get("c")!;
    assert.equal(c.event, "failed");
    assert.equal((c.error as Record<string, unknown>).because, "b");
    assert.equal(events(path.join(dir, "fail.ndjson")).at(-1)!.failed, 1);
  });

  it("--json=fd:3 writes to that descriptor and leaves stdout to the recipe", () => {
    const dir = project();
    write(dir, "r.ts", fs.readFileSync(path.join(dir, "r.ts"), "utf8").replace('writeFileSync(out, "d")', 'console.log("from the recipe"); writeFileSync(out, "d")'));
    const r = spawnSync("sh", ["-c", `"${process.execPath}" "${cli}" r.ts --json=fd:3 3>events.ndjson`], { cwd: dir, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "from the recipe\n");
    checkStream(events(path.join(dir, "events.ndjson")));
  });

  it("--json without a file is a usage error", () => {
    const r = crecipe(project(), ["r.ts", "--json"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--json wants a file or fd:N/);
  });

  it("recipes/simple.ts gives the same stream, in shape, under Node and Deno", () => {
    const shape = (file: string) =>
      events(file)
        .filter((e) => e.event !== "command") // commands and their order follow the runtime's scheduling
        .map((e) => `${e.event} ${e.target ?? ""} ${Object.keys(e).sort().join(",")}`)
        .sort();
    const dir = tempDir();
    const node = crecipe(dir, ["-o", "out-node", path.join(repo, "recipes/simple.ts"), "simple.image", "--json=node.ndjson"]);
    assert.equal(node.status, 0, node.stderr);
    const d = spawnSync(deno, ["run", "-A", `--config=${path.join(repo, "deno.json")}`, path.join(repo, "bin/crecipe.ts"), "-o", "out-deno", path.join(repo, "recipes/simple.ts"), "simple.image", "--json=deno.ndjson"], {
      cwd: dir,
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1" },
    });
    assert.equal(d.status, 0, d.stderr);
    const ended = checkStream(events(path.join(dir, "node.ndjson")));
    assert.ok(ended.has("simple.image") && ended.has("libs.layer") && ended.has("hello"));
    checkStream(events(path.join(dir, "deno.ndjson")));
    assert.deepEqual(shape(path.join(dir, "deno.ndjson")), shape(path.join(dir, "node.ndjson")));
    assert.equal(events(path.join(dir, "deno.ndjson"))[0].runtime, "deno");
  });
});

describe("--trace", () => {
  it("writes trace-event JSON: a slice per built target, none overlapping on a job slot's lane", () => {
    const dir = project({ slow: 0.4 });
    const r = crecipe(dir, ["r.ts", "-j", "2", "--trace=trace.json"]);
    assert.equal(r.status, 0, r.stderr);
    const trace = JSON.parse(read(dir, "trace.json")) as { traceEvents: Record<string, unknown>[] };
    const slices = trace.traceEvents.filter((e) => e.ph === "X");
    for (const e of slices) for (const key of ["ph", "ts", "dur", "pid", "tid"]) assert.ok(key in e, `${key} in ${JSON.stringify(e)}`);
    const targets = slices.filter((e) => e.cat === "target");
    assert.deepEqual([...new Set(targets.map((e) => e.name))].sort(), ["a", "b", "c", "d"]);
    const lanes = new Map<unknown, Record<string, unknown>[]>();
    for (const e of targets) lanes.set(e.tid, [...(lanes.get(e.tid) ?? []), e]);
    assert.ok(lanes.size >= 1 && lanes.size <= 2, "at most -j lanes");
    for (const [tid, list] of lanes) {
      list.sort((x, y) => (x.ts as number) - (y.ts as number));
      for (let i = 1; i < list.length; i++) {
        const before = list[i - 1];
        assert.ok((before.ts as number) + (before.dur as number) <= (list[i].ts as number), `lane ${tid}: ${before.name} overlaps ${list[i].name}`);
      }
    }
    const commands = slices.filter((e) => e.cat === "command");
    assert.ok(commands.some((e) => e.name === "sleep 0.1"), "commands are nested slices");
    const critical = slices.filter((e) => e.cat === "critical").map((e) => e.name);
    assert.ok(critical.includes("a") && critical.includes("c"), `critical path: ${critical}`);
  });
});

describe("job slots", () => {
  it("a builder waiting on several dependencies at once lets its slot go once: -j 1 finishes, no lane holds two, no time is negative", () => {
    const dir = tempDir();
    write(dir, "r.ts", `
import { file, $ } from ${JSON.stringify(modUrl)};
import { readFileSync, writeFileSync } from "node:fs";
const leaves = ["x", "y", "z"].map((n) => file(n, async (out) => { await $\`sleep 0.2\`; writeFileSync(out, n); }));
export const top = file("top", async (out, ctx) => {
  const paths = await ctx.needAll(leaves);
  writeFileSync(out, paths.map((p) => readFileSync(p, "utf8")).join(""));
});
export default top;
`);
    for (const jobs of ["1", "2"]) {
      fs.rmSync(path.join(dir, "out"), { recursive: true, force: true });
      const r = crecipe(dir, ["r.ts", "-j", jobs, `--trace=trace${jobs}.json`, `--json=events${jobs}.ndjson`]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(read(dir, "out/top"), "xyz");
      const list = events(path.join(dir, `events${jobs}.ndjson`));
      checkStream(list);
      for (const e of list) if (e.event === "built") assert.ok((e.ms as number) >= 0, `${e.target}: ${e.ms} ms`);
      assert.equal(list.filter((e) => e.event === "waiting" && e.target === "top").length, 1, "top lets go of its slot once");
      const critical = list.at(-1)!.criticalPath as { ms: number };
      assert.ok(critical.ms >= 200, `critical path ${critical.ms} ms`);
      const trace = JSON.parse(read(dir, `trace${jobs}.json`)) as { traceEvents: Record<string, unknown>[] };
      const targets = trace.traceEvents.filter((e) => e.cat === "target");
      assert.ok(new Set(targets.map((e) => e.tid)).size <= Number(jobs), `at most ${jobs} lanes`);
      const byLane = new Map<unknown, Record<string, unknown>[]>();
      for (const e of targets) byLane.set(e.tid, [...(byLane.get(e.tid) ?? []), e]);
      for (const lane of byLane.values()) {
        lane.sort((p, q) => (p.ts as number) - (q.ts as number));
        for (let i = 1; i < lane.length; i++) assert.ok((lane[i - 1].ts as number) + (lane[i - 1].dur as number) <= (lane[i].ts as number), `${lane[i - 1].name} overlaps ${lane[i].name}`);
      }
    }
  });
});

describe("the cache report", () => {
  it("counts early cutoffs; -v says why each target rebuilt", () => {
    const dir = project();
    assert.equal(crecipe(dir, ["r.ts"]).status, 0);
    // a's builder changes but not what it writes: a rebuilds to the same bytes, b and c stay.
    write(dir, "r.ts", fs.readFileSync(path.join(dir, "r.ts"), "utf8").replace('writeFileSync(out, "a")', 'writeFileSync(out, ["a"].join(""))'));
    const r = crecipe(dir, ["r.ts", "-v"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /crecipe: 1 built, 3 up to date, 1 cut off early in/);
    assert.match(r.stderr, /^crecipe: rebuilt a: .*builder/m);
  });

  it("a run longer than 3 s names its critical path and slowest target", () => {
    const dir = project({ slow: 3.1 });
    const r = crecipe(dir, ["r.ts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^crecipe: critical path \d+\.\d\d s: a → b → c \(slowest: a, 3\.\d\d s\)$/m);
  });
});
