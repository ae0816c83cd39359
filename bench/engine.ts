/**
 * Engine cases: a 1000-target recipe in a chain-and-fan shape (100 groups of 9 leaves
 * and a combiner that also takes the previous group's combiner), beside make -j2 doing
 * the same work with the same files, and beside a bare `node -e 1`.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { paired, type Row, time } from "./util.ts";

const GROUPS = 100;
const LEAVES = 9;

export function engineCases(repo: string): Row[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crecipe-bench-"));
  try {
    fs.mkdirSync(path.join(dir, "src"));
    for (let g = 0; g < GROUPS; g++) {
      for (let i = 0; i < LEAVES; i++) fs.writeFileSync(path.join(dir, "src", `${g}-${i}.txt`), `leaf ${g} ${i}\n`);
    }
    fs.writeFileSync(path.join(dir, "r.ts"), `
import { file, here } from ${JSON.stringify(path.join(repo, "lib/mod.ts"))};
import { readFileSync, writeFileSync } from "node:fs";
let previous: any;
const combiners: any[] = [];
for (let g = 0; g < ${GROUPS}; g++) {
  const leaves = Array.from({ length: ${LEAVES} }, (_, i) => file(\`leaf\${g}-\${i}\`, async (out, ctx) => {
    writeFileSync(out, (await ctx.read(here(\`src/\${g}-\${i}.txt\`))).toString().toUpperCase());
  }));
  const before = previous;
  previous = file(\`group\${g}\`, async (out, ctx) => {
    const inputs = await ctx.needAll(before ? [before, ...leaves] : leaves);
    writeFileSync(out, inputs.map((p) => readFileSync(p, "utf8")).join(""));
  });
  combiners.push(previous);
}
export default previous;
`);
    // The same graph for make: leaves are `tr`, combiners are `cat`.
    const rules: string[] = [`all: out/group${GROUPS - 1}`, ""];
    for (let g = 0; g < GROUPS; g++) {
      const leaves = Array.from({ length: LEAVES }, (_, i) => `out/leaf${g}-${i}`);
      for (let i = 0; i < LEAVES; i++) rules.push(`out/leaf${g}-${i}: src/${g}-${i}.txt | out\n\ttr a-z A-Z < $< > $@.tmp && mv $@.tmp $@`);
      const inputs = g ? [`out/group${g - 1}`, ...leaves] : leaves;
      rules.push(`out/group${g}: ${inputs.join(" ")}\n\tcat $^ > $@.tmp && mv $@.tmp $@`);
    }
    rules.push("out:\n\tmkdir -p out");
    fs.writeFileSync(path.join(dir, "Makefile"), rules.join("\n") + "\n");

    const crecipe = [process.execPath, path.join(repo, "bin/crecipe.js"), "-q", "-o", "cout", "r.ts"];
    const make = ["make", "-s", "-j2"];
    time(crecipe, { cwd: dir, runs: 1 });
    time(make, { cwd: dir, runs: 1 });
    const same = (a: string, b: string) => fs.readFileSync(path.join(dir, a), "utf8") === fs.readFileSync(path.join(dir, b), "utf8");
    if (!same(`cout/group${GROUPS - 1}`, `out/group${GROUPS - 1}`)) throw new Error("crecipe and make disagree on the output");

    const nodeBare = time([process.execPath, "-e", "1"], { runs: 11 });
    const noopCrecipe = time(crecipe, { cwd: dir, runs: 11 });
    const noopMake = time(make, { cwd: dir, runs: 11 });
    const leaf = path.join(dir, "src/0-0.txt");
    const flip = (i: number) => fs.writeFileSync(leaf, `leaf 0 0 version ${i}\n`);
    const leafCrecipe = time(crecipe, { cwd: dir, runs: 7, before: flip });
    const leafMake = time(make, { cwd: dir, runs: 7, before: (i) => (flip(i), bumpMtime(leaf)) });
    // The cost of watching: the same runs writing every event (--json) and a trace (--trace).
    const watched = [...crecipe, `--json=${path.join(dir, "events.ndjson")}`, `--trace=${path.join(dir, "trace.json")}`];
    time(crecipe, { cwd: dir, runs: 1 }); // current again after the leaf edits
    const [noopWatched, noopPlain] = paired(watched, crecipe, { cwd: dir, runs: 15 });
    const [leafWatched, leafAgain] = paired(watched, crecipe, { cwd: dir, runs: 9, before: (i) => flip(i + 100) });
    return [
      { case: "no-op, 1000 targets, with --json and --trace", crecipe: noopWatched, peer: "the same without (alternated)", peerSeconds: noopPlain, goal: "≤ 1.03×" },
      { case: "one leaf changed, with --json and --trace", crecipe: leafWatched, peer: "the same without (alternated)", peerSeconds: leafAgain, goal: "≤ 1.03×" },
      { case: "no-op, 1000 targets", crecipe: noopCrecipe, peer: "node -e 1", peerSeconds: nodeBare, goal: "≤ 2×" },
      { case: "no-op, 1000 targets", crecipe: noopCrecipe, peer: "make -j2", peerSeconds: noopMake },
      { case: "one leaf changed (101 rebuild)", crecipe: leafCrecipe, peer: "make -j2", peerSeconds: leafMake },
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** make compares mtimes at one-second-or-finer resolution: make sure the edit is newer. */
function bumpMtime(file: string) {
  const later = new Date(Date.now() + 1000);
  fs.utimesSync(file, later, later);
}
