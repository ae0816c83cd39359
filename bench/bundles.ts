/**
 * Bundles and runc, beside their peers measured in the same run:
 *  - runc running simple's bundle as crecipe made it (read-only root, no overlay) vs
 *    `docker run --rm --network=none` of the same image;
 *  - the whole run.runc target, cold (the CLI, the throw-away overlay, runc) vs the same;
 *  - bundle() of recipes/debian.ts's image (two layers, ~200 MB) vs `umoci unpack` of the
 *    same OCI layout (both as the user the bench runs as: root applies owners in both).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type Row, time } from "./util.ts";

export function bundleCases(repo: string): Row[] {
  if (spawnSync("sh", ["-c", "command -v runc"]).status !== 0) return [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "crecipe-bench-bundles-"));
  const rows: Row[] = [];
  try {
    const mod = JSON.stringify(path.join(repo, "lib/mod.ts"));
    const recipe = path.join(work, "r.ts");
    fs.writeFileSync(recipe, [
      `import { bundle, load, run } from ${mod};`,
      `import { simpleImage } from ${JSON.stringify(path.join(repo, "recipes/simple.ts"))};`,
      `import { debianImage } from ${JSON.stringify(path.join(repo, "recipes/debian.ts"))};`,
      `export const simpleBundle = bundle(simpleImage);`,
      `export const simpleRun = run.runc(simpleBundle);`,
      `export const simpleLoad = load.docker(simpleImage);`,
      `export const debianBundle = bundle(debianImage);`,
      "",
    ].join("\n"));
    const crecipe = (...args: string[]) => [process.execPath, path.join(repo, "bin/crecipe.js"), "-q", recipe, ...args];
    const state = (name: string) => path.join(work, "out/.crecipe/state", `${name}.json`);
    const docker = spawnSync("docker", ["info"]).status === 0;

    time(crecipe("simpleRun", ...(docker ? ["simpleLoad"] : [])), { cwd: work, runs: 1 });
    // A fresh container id each time ($$: the shell's pid).
    const runcAlone = time(["sh", "-c", `runc --root ${work}/state run --bundle ${work}/out/simple.bundle bench-$$ > /dev/null`], { runs: 11 });
    const cold = time(crecipe("simpleRun"), { cwd: work, runs: 11, before: () => fs.rmSync(state("simple.runrunc"), { force: true }) });
    if (docker) {
      // By the ID load.docker gave (the tag may name another build of simple).
      const imageId = JSON.parse(fs.readFileSync(state("simple.load"), "utf8")).value;
      const dockerRun = time(["docker", "run", "--rm", "--network=none", imageId], { runs: 11 });
      rows.push({ case: "runc run of simple.bundle (as made: read-only root)", crecipe: runcAlone, peer: "docker run of simple's image", peerSeconds: dockerRun, goal: "≤ 0.5×" });
      rows.push({ case: "simple.runrunc cold (CLI, overlay, runc)", crecipe: cold, peer: "docker run of simple's image", peerSeconds: dockerRun, goal: "≤ 0.5×" });
    }

    if (spawnSync("sh", ["-c", "command -v mmdebstrap && command -v umoci"]).status === 0) {
      const env = { SOURCE_DATE_EPOCH: "1700000000" };
      time(crecipe("debianBundle"), { cwd: work, runs: 1, env }); // bootstraps once (~45 s; the .debs are cached)
      const ours = time(crecipe("debianBundle"), { cwd: work, runs: 3, env, before: () => fs.rmSync(state("debian.bundle"), { force: true }) });
      const dest = path.join(work, "umoci");
      const rootless = process.getuid?.() === 0 ? [] : ["--rootless"];
      const umoci = time(["umoci", "unpack", ...rootless, "--image", `${work}/out/debian.image:latest`, dest], { runs: 3, before: () => fs.rmSync(dest, { recursive: true, force: true }) });
      rows.push({ case: "bundle of the Debian image (2 layers)", crecipe: ours, peer: "umoci unpack", peerSeconds: umoci, goal: "≤ 1×" });
    }
  } finally {
    spawnSync("sh", ["-c", `rm -rf ${work} 2>/dev/null || { chmod -R u+w ${work}; rm -rf ${work}; }`]);
  }
  return rows;
}
