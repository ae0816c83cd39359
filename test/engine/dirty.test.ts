/**
 * isDirty in-process (engine/dirty.ts): a target is built for real in a temp out dir,
 * then the verdict is read from its state as the next run would read it.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { build } from "../../lib/engine/build.ts";
import { isDirty } from "../../lib/engine/dirty.ts";
import { target } from "../../lib/engine/node.ts";
import { layout, readState, stateFile } from "../../lib/engine/state.ts";
import type { Node } from "../../lib/engine/types.ts";
import { tempDir, write } from "../helpers.ts";

/** The verdict the next run would reach for `node` (`recorded` names the state to read). */
function verdict(node: Node, outDir: string, upstream = (_dep: Node): Promise<string> => Promise.reject(new Error("no upstream expected")), recorded = node.name) {
  return isDirty(node, readState(layout(outDir), recorded), { layout: layout(outDir), show: (p) => p }, upstream);
}

const root = tempDir();
let projects = 0;
/** A fresh project directory (one temp dir for the whole file: one exit handler). */
function project(): string {
  const dir = path.join(root, String(projects++));
  fs.mkdirSync(dir);
  return dir;
}

/** Set a file's times later than now: its stat signature changes, its content does not. */
function touch(file: string): void {
  const later = new Date(Date.now() + 60_000);
  fs.utimesSync(file, later, later);
}

describe("isDirty", () => {
  it("a target never built is dirty: it was never built", async () => {
    const outDir = path.join(project(), "out");
    const node = target("never.txt", (ctx) => fs.writeFileSync(ctx.out, "x"));
    assert.deepEqual(await verdict(node, outDir), { dirty: true, reason: "it was never built" });
  });

  it("a target just built is up to date, with nothing to refresh", async () => {
    const outDir = path.join(project(), "out");
    const node = target("fresh.txt", (ctx) => fs.writeFileSync(ctx.out, "x"));
    await build(node, { outDir, quiet: true });
    const v = await verdict(node, outDir);
    assert.equal(v.dirty, false);
    assert.equal(v.reason, "up to date");
    assert.equal(v.refresh, undefined);
  });

  it("a state recorded for other builder text is dirty: its recipe changed", async () => {
    const outDir = path.join(project(), "out");
    const before = target("text-before.txt", (ctx) => fs.writeFileSync(ctx.out, "before"));
    const after = target("text-after.txt", (ctx) => fs.writeFileSync(ctx.out, "after"));
    await build(before, { outDir, quiet: true });
    const v = await verdict(after, outDir, undefined, before.name);
    assert.deepEqual([v.dirty, v.reason], [true, "its recipe (builder text or options) changed"]);
  });

  it("a state recorded for other options is dirty: its recipe changed", async () => {
    const outDir = path.join(project(), "out");
    const builder = (ctx: { out: string }) => fs.writeFileSync(ctx.out, "x");
    const level1 = target("level1.txt", builder, { options: { level: 1 } });
    const level2 = target("level2.txt", builder, { options: { level: 2 } });
    await build(level1, { outDir, quiet: true });
    const v = await verdict(level2, outDir, undefined, level1.name);
    assert.deepEqual([v.dirty, v.reason], [true, "its recipe (builder text or options) changed"]);
  });

  /** A target `name` that copies the host file input.txt, built once. */
  const builtReader = async (name: string) => {
    const dir = project();
    const outDir = path.join(dir, "out");
    const input = write(dir, "input.txt", "one\n");
    const node = target(name, async (ctx) => fs.writeFileSync(ctx.out, await ctx.read(input)));
    await build(node, { outDir, quiet: true });
    return { node, outDir, input };
  };

  it("a host file whose content changed makes its reader dirty", async () => {
    const { node, outDir, input } = await builtReader("reads-changed.txt");
    fs.writeFileSync(input, "two, longer\n");
    const v = await verdict(node, outDir);
    assert.deepEqual([v.dirty, v.reason], [true, `host file ${input} changed`]);
  });

  it("a host file only touched leaves its reader clean, with the new signature to store", async () => {
    const { node, outDir, input } = await builtReader("reads-touched.txt");
    touch(input);
    const v = await verdict(node, outDir);
    assert.equal(v.dirty, false);
    assert.equal(v.refresh?.deps.size, 1);
    assert.equal(v.refresh?.output, undefined);
  });

  it("an output edited by hand makes the target dirty and says what changed", async () => {
    const outDir = path.join(project(), "out");
    const node = target("edited.txt", (ctx) => fs.writeFileSync(ctx.out, "built"));
    await build(node, { outDir, quiet: true });
    const out = path.join(outDir, node.name);
    fs.writeFileSync(out, "edited by hand");
    const v = await verdict(node, outDir);
    assert.equal(v.dirty, true);
    assert.deepEqual(v.handEdit, { path: out, what: "its content changed" });
  });

  it("an output only touched leaves the target clean, with the new signature to store", async () => {
    const outDir = path.join(project(), "out");
    const node = target("touched.txt", (ctx) => fs.writeFileSync(ctx.out, "built"));
    await build(node, { outDir, quiet: true });
    touch(path.join(outDir, node.name));
    const v = await verdict(node, outDir);
    assert.equal(v.dirty, false);
    assert.equal(typeof v.refresh?.output, "string");
  });

  it("a missing output makes the target dirty", async () => {
    const outDir = path.join(project(), "out");
    const node = target("removed.txt", (ctx) => fs.writeFileSync(ctx.out, "built"));
    await build(node, { outDir, quiet: true });
    fs.rmSync(path.join(outDir, node.name));
    const v = await verdict(node, outDir);
    assert.deepEqual([v.dirty, v.reason], [true, `its output ${path.join(outDir, node.name)} is missing`]);
  });

  describe("an upstream target", () => {
    const upstream = target("upstream.txt", (ctx) => fs.writeFileSync(ctx.out, "up"));
    const downstream = target("downstream.txt", async (ctx) => fs.writeFileSync(ctx.out, fs.readFileSync(await ctx.need(upstream))));
    const outDir = path.join(project(), "out");
    const recorded = async () => {
      await build(downstream, { outDir, quiet: true });
      const read = readState(layout(outDir), upstream.name);
      assert.ok(read.ok);
      return read.state.stamp;
    };

    it("with the stamp its dependent recorded leaves the dependent clean", async () => {
      const stamp = await recorded();
      assert.equal((await verdict(downstream, outDir, async () => stamp)).dirty, false);
    });

    it("with another stamp makes its dependent dirty: upstream changed", async () => {
      await recorded();
      const v = await verdict(downstream, outDir, async () => "another stamp");
      assert.deepEqual([v.dirty, v.reason], [true, "upstream upstream.txt changed"]);
    });

    it("that would rebuild (a dry run) makes its dependent maybe dirty", async () => {
      await recorded();
      const v = await verdict(downstream, outDir, async () => "rebuild");
      assert.deepEqual([v.dirty, v.maybe, v.reason], [true, true, "upstream.txt would rebuild"]);
    });
  });

  it("an upstream rebuilt to the same content does not rebuild its dependent (early cutoff)", async () => {
    const dir = project();
    const outDir = path.join(dir, "out");
    const input = write(dir, "input.txt", "one\n");
    const runs = { reader: 0, dependent: 0 };
    const reader = target("cutoff-reader.txt", async (ctx) => {
      runs.reader++;
      await ctx.read(input);
      fs.writeFileSync(ctx.out, "the same whatever the input");
    });
    const dependent = target("cutoff-dependent.txt", async (ctx) => {
      runs.dependent++;
      fs.copyFileSync(await ctx.need(reader), ctx.out);
    });
    await build(dependent, { outDir, quiet: true });
    fs.writeFileSync(input, "two, longer\n");
    const again = await build(dependent, { outDir, quiet: true });
    assert.deepEqual(runs, { reader: 2, dependent: 1 });
    assert.equal(again.built, false);
  });

  it("a state file that is not JSON is dirty, with the parser's words for a warning", async () => {
    const outDir = path.join(project(), "out");
    const node = target("corrupt.txt", (ctx) => fs.writeFileSync(ctx.out, "x"));
    await build(node, { outDir, quiet: true });
    fs.writeFileSync(stateFile(layout(outDir), node.name), "{ half a state");
    const v = await verdict(node, outDir);
    assert.deepEqual([v.dirty, v.reason], [true, "its state file was unreadable"]);
    assert.match(v.unreadable ?? "", /JSON/);
  });
});
