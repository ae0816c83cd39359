/**
 * Locks that never wedge and are never stolen (issue 10, item 3). A lock file a crash left
 * half-made does not hang the next run; a live holder keeps its lock and its temp dir even
 * from another pid namespace, where its pid means someone else or nobody; every wait says
 * who holds what and how out; a cycle that spans two processes ends in an error.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { calls, cli, crecipe, crecipeAsync, modUrl, read, tempDir, waitFor, write } from "../helpers.ts";

/** t.txt waits for the file "go" once started, so a test can hold its lock as long as it likes. */
const gated = `
import { file, here } from ${JSON.stringify(modUrl)};
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
export const t = file("t.txt", async (out) => {
  appendFileSync(here("calls.log"), "t\\n");
  writeFileSync(here("t-started"), String(process.pid));
  while (!existsSync(here("go"))) await new Promise((r) => setTimeout(r, 50));
  writeFileSync(out, "done");
});
export const other = file("other.txt", async (out) => {
  appendFileSync(here("calls.log"), "other\\n");
  writeFileSync(out, "other");
});
export default t;`;

function project(recipe = gated): string {
  const dir = tempDir();
  write(dir, "r.ts", recipe);
  return dir;
}

const lockDir = (dir: string) => path.join(dir, "out/.crecipe/lock");
const tmpDir = (dir: string) => path.join(dir, "out/.crecipe/tmp");
const list = (d: string) => (fs.existsSync(d) ? fs.readdirSync(d).sort() : []);

/** A run that must end by itself: a run still waiting after `ms` is killed, and the test fails. */
async function finishes(run: ReturnType<typeof crecipeAsync>, ms = 20000) {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((r) => (timer = setTimeout(() => r("hung"), ms)));
  const result = await Promise.race([run.done, hung]);
  clearTimeout(timer);
  if (result === "hung") {
    run.child.kill("SIGKILL");
    const { err } = await run.done;
    assert.fail(`crecipe was still waiting after ${ms / 1000} s; it printed:\n${err}`);
  }
  return result;
}

/** This machine as holder.ts names it: boot id (12 hex digits) and pid namespace. */
const bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").replaceAll("-", "").trim().slice(0, 12);
const pidns = fs.statSync("/proc/self/ns/pid").ino;

/** A pid that no process has now (one that just exited). */
function deadPid(): number {
  const pid = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
  return Number(pid);
}

describe("locks", () => {
  it("a lock file left empty, cut short or unreadable by a crash does not hang the next run", async () => {
    const leftovers: [string, string, number][] = [
      // what the lock file holds, what crecipe says it removed, its age in seconds
      ["", "(empty)", 60],
      ["1", '("1")', 60],
      ['{"boot":"dca8b4bf', `("{\\"boot\\":\\"dca8b4bf")`, 60],
      ["\0".repeat(4096), "(4096 unreadable bytes)", 60],
      ["", "(empty)", 0], // just made: taken over once it is a few seconds old
    ];
    for (const [content, said, age] of leftovers) {
      const dir = project();
      write(dir, "go", "");
      const lock = write(dir, "out/.crecipe/lock/t.txt.lock", content);
      const then = new Date(Date.now() - age * 1000);
      fs.utimesSync(lock, then, then);
      const r = await finishes(crecipeAsync(dir, ["r.ts"]));
      assert.equal(r.code, 0, r.err);
      assert.equal(read(dir, "out/t.txt"), "done");
      assert.ok(r.err.includes(`t.txt: removed a lock file left by a crash ${said}`), r.err);
      assert.deepEqual(list(lockDir(dir)), []);
    }
  });

  it("what a dead or rebooted holder left is cleared; a temp dir from another pid namespace is kept", async () => {
    const dir = project();
    write(dir, "go", "");
    const dead = deadPid();
    const before = "0000deadbeef"; // a boot id that is not this boot's
    const rebooted = { boot: before, pidns, pid: 1, start: "1", since: new Date().toISOString(), cmd: "crecipe r.ts", nonce: "n" };
    write(dir, "out/.crecipe/lock/t.txt.lock", JSON.stringify(rebooted) + "\n");
    const temps = {
      gone: `t.txt.${dead}-12345-${pidns}-${bootId}.aaaaaa`, // our pid namespace, no such pid
      rebooted: `t.txt.1-1-${pidns}-${before}.bbbbbb`, // pid 1 is alive, but that was another boot
      elsewhere: `t.txt.${dead}-12345-4026500000-${bootId}.cccccc`, // another pid namespace: may be alive
    };
    for (const name of Object.values(temps)) write(tmpDir(dir), `${name}/scratch/file`, "");
    write(lockDir(dir), `${dead}-12345-${pidns}-${bootId}.t.txt.wait`, "{}");
    const r = await finishes(crecipeAsync(dir, ["r.ts"]));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /t\.txt: took over the lock of pid 1, since .*, running: crecipe r\.ts, which is gone/);
    assert.deepEqual(list(tmpDir(dir)), [temps.elsewhere]);
    assert.deepEqual(list(lockDir(dir)), []);
  });

  it("a waiter says once which target, who holds it since when running what, that Ctrl-C stops waiting, and which lock to remove", async () => {
    const dir = project();
    const holder = crecipeAsync(dir, ["r.ts"]);
    let waiter: ReturnType<typeof crecipeAsync> | undefined;
    try {
      await waitFor(() => fs.existsSync(path.join(dir, "t-started")));
      waiter = crecipeAsync(dir, ["r.ts"]);
      let err = "";
      waiter.child.stderr.on("data", (d) => (err += d));
      await waitFor(() => err.includes("stops waiting") && list(lockDir(dir)).some((f) => f.endsWith(".wait")));
      await new Promise((r) => setTimeout(r, 1500)); // a few polls more: the message is not repeated
      waiter.child.kill("SIGINT");
      const w = await finishes(waiter);
      assert.equal(w.code, 130, w.err);
      const pid = holder.child.pid;
      assert.match(w.err, new RegExp(`t\\.txt is being built by another crecipe: pid ${pid}, since \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d, running: \\S*node \\S*crecipe\\.js r\\.ts\\n`));
      assert.match(w.err, /Ctrl-C stops waiting/);
      assert.match(w.err, /if that process is gone for good, remove out\/\.crecipe\/lock\/t\.txt\.lock/);
      assert.equal(w.err.split("is being built by another crecipe").length, 2, "said once");
      assert.deepEqual(list(lockDir(dir)), ["t.txt.lock"], "Ctrl-C left no wait record behind");
    } finally {
      waiter?.child.kill("SIGKILL");
      write(dir, "go", "");
    }
    assert.equal((await finishes(holder)).code, 0);
    assert.deepEqual(calls(dir), ["t"]);
  });

  it("--clean during a live build keeps that build's temp dir and clears a dead one's; the build still lands", async () => {
    const dir = project();
    const dead = `t.txt.${deadPid()}-12345-${pidns}-${bootId}.dddddd`;
    const holder = crecipeAsync(dir, ["r.ts"]);
    try {
      await waitFor(() => fs.existsSync(path.join(dir, "t-started")));
      write(tmpDir(dir), `${dead}/scratch/file`, "");
      const live = list(tmpDir(dir)).filter((n) => n !== dead);
      assert.equal(live.length, 1, `one live temp dir: ${list(tmpDir(dir))}`);
      const c = crecipe(dir, ["r.ts", "--clean"]);
      assert.equal(c.status, 0, c.err);
      assert.deepEqual(list(tmpDir(dir)), live);
    } finally {
      write(dir, "go", "");
    }
    const r = await finishes(holder);
    assert.equal(r.code, 0, r.err);
    assert.equal(read(dir, "out/t.txt"), "done");
  });

  const root = process.getuid?.() === 0 && spawnSync("unshare", ["-pf", "--mount-proc", "true"]).status === 0;
  it("a live crecipe in another pid namespace keeps its lock and its temp dir", { skip: !root && "needs root for unshare -p" }, async () => {
    const dir = project();
    // Inside, crecipe gets a pid that no process has out here: the old test (kill(pid, 0))
    // took that for a dead holder.
    const pidMax = Number(fs.readFileSync("/proc/sys/kernel/pid_max", "utf8"));
    let pid = pidMax - 1;
    while (fs.existsSync(`/proc/${pid}`)) pid--;
    const inner = spawn("unshare", ["-pf", "--mount-proc", "--kill-child", "sh", "-c",
      `echo ${pid - 1} > /proc/sys/kernel/ns_last_pid && "$0" "$1" r.ts; exit $?`, process.execPath, cli], { cwd: dir });
    let innerErr = "";
    inner.stderr.on("data", (d) => (innerErr += d));
    const innerDone = new Promise<number | null>((r) => inner.on("close", r));
    let outer: ReturnType<typeof crecipeAsync> | undefined;
    try {
      await waitFor(() => fs.existsSync(path.join(dir, "t-started")));
      assert.equal(read(dir, "t-started"), String(pid), "the inner crecipe's pid");
      const [innerTemp] = list(tmpDir(dir));
      // "other" builds first, so this run sweeps the temp dirs while it waits for t.txt.
      outer = crecipeAsync(dir, ["r.ts", "other", "t", "-j", "1"]);
      let err = "";
      outer.child.stderr.on("data", (d) => (err += d));
      await waitFor(() => (err.includes("being built by another crecipe") && calls(dir).includes("other")) || calls(dir).length > 2);
      assert.deepEqual(calls(dir), ["t", "other"], "t.txt is not built a second time while its holder lives");
      assert.ok(fs.existsSync(path.join(tmpDir(dir), innerTemp)), "the holder's temp dir is kept");
      assert.match(err, new RegExp(`pid ${pid} in another pid namespace \\(pid:\\[\\d+\\]\\), since .*, running: \\S*node \\S*crecipe\\.js r\\.ts`));
      assert.match(err, /crecipe cannot see into that pid namespace; if that process is gone for good, remove out\/\.crecipe\/lock\/t\.txt\.lock/);
      write(dir, "go", "");
      assert.equal(await innerDone, 0, innerErr);
      const r = await finishes(outer);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(calls(dir), ["t", "other"]);
      assert.equal(read(dir, "out/t.txt"), "done");
    } finally {
      inner.kill("SIGKILL");
      outer?.child.kill("SIGKILL");
    }
  });

  it("a dependency cycle across two processes ends both with an error, not a wait", async () => {
    // x needs y and y needs x; each builder first waits until the other has started, so
    // each process holds its own target's lock when it asks for the other's.
    const dir = project(`
import { file, here } from ${JSON.stringify(modUrl)};
import { existsSync, writeFileSync } from "node:fs";
const until = async (name: string) => { while (!existsSync(here(name))) await new Promise((r) => setTimeout(r, 50)); };
export const x: any = file("x", async (out, ctx) => {
  writeFileSync(here("x-started"), "");
  await until("y-started");
  await ctx.need(y);
  writeFileSync(out, "x");
});
export const y: any = file("y", async (out, ctx) => {
  writeFileSync(here("y-started"), "");
  await until("x-started");
  await ctx.need(x);
  writeFileSync(out, "y");
});
export default x;`);
    const one = crecipeAsync(dir, ["r.ts", "x"]);
    const two = crecipeAsync(dir, ["r.ts", "y"]);
    try {
      const [a, b] = [await finishes(one), await finishes(two)];
      for (const r of [a, b]) {
        assert.equal(r.code, 1, r.err);
        assert.match(r.err, /dependency cycle: (x → y → x|y → x → y)/);
      }
      assert.deepEqual(list(lockDir(dir)), [], "no lock or wait record left");
    } finally {
      one.child.kill("SIGKILL");
      two.child.kill("SIGKILL");
    }
  });
});
