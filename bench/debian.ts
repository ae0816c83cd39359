/**
 * recipes/debian.ts beside its peers, measured in the same run:
 *  - cold debian.runlocal (fresh out dir) vs `mmdebstrap --variant=minbase` alone;
 *  - a no-op of the whole recipe (every default target built) vs a bare `node -e 1`;
 *  - the image after an /init edit vs `docker build` of the same edit on a cached base
 *    (the base layer imported into Docker, the legacy builder);
 *  - debian.rundocker after an /init edit vs that `docker build` plus `docker run`;
 *  - gz of the image vs pigz --rsyncable of the same tar;
 *  - one package added to the base: the new layer bytes with the base split by package vs
 *    the base as one layer, and the time to make those layers again.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type Row, time } from "./util.ts";

export function debianCases(repo: string): Row[] {
  if (spawnSync("sh", ["-c", "command -v mmdebstrap"]).status !== 0) return [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "crecipe-bench-debian-"));
  const rows: Row[] = [];
  try {
    const recipe = path.join(work, "debian.ts");
    const source = fs.readFileSync(path.join(repo, "recipes/debian.ts"), "utf8").replace(`"../lib/mod.ts"`, JSON.stringify(path.join(repo, "lib/mod.ts")));
    fs.writeFileSync(recipe, source);
    const crecipe = (...args: string[]) => [process.execPath, path.join(repo, "bin/crecipe.js"), "-q", recipe, ...args];
    const env = { SOURCE_DATE_EPOCH: "1700000000" };
    let edit = 0;
    const editInit = () => {
      edit++;
      fs.writeFileSync(recipe, source.replace("dpkg -l | grep -c ^ii", `dpkg -l | grep -c ^ii # edit ${edit}`));
    };

    const cold = time(crecipe("debian.runlocal"), { cwd: work, runs: 1, env });
    const alone = time(["mmdebstrap", "--variant=minbase", "-q", "bookworm", path.join(work, "alone.tar")], { runs: 1, env });
    fs.rmSync(path.join(work, "alone.tar"), { force: true });
    rows.push({ case: "cold debian.runlocal", crecipe: cold, peer: "mmdebstrap minbase alone", peerSeconds: alone, goal: "≤ 1.3×" });

    const docker = spawnSync("docker", ["info"]).status === 0;
    // Everything the recipe builds by default (the VM run, Docker, the gz), then nothing.
    time(crecipe(...(docker ? [] : ["debian.runlocal", "debianImage"])), { cwd: work, runs: 1, env });
    const bare = time([process.execPath, "-e", "1"], { runs: 11 });
    const noop = time(crecipe(...(docker ? [] : ["debian.runlocal", "debianImage"])), { cwd: work, runs: 11, env });
    rows.push({ case: `no-op of recipes/debian.ts (${docker ? "all" : "some"} targets)`, crecipe: noop, peer: "node -e 1", peerSeconds: bare, goal: "≤ 2×" });

    if (docker) {
      const warm = time(crecipe("debianImage"), { cwd: work, runs: 5, before: editInit, env });
      const context = path.join(work, "context");
      fs.mkdirSync(context);
      spawnSync("docker", ["import", path.join(work, "out/debootstrap.layer"), "crecipe-bench-debian-base"]);
      fs.writeFileSync(path.join(context, "Dockerfile"), "FROM crecipe-bench-debian-base\nCOPY init /init\nCMD [\"/init\"]\n");
      const writeInit = (i: number) => fs.writeFileSync(path.join(context, "init"), `#!/bin/sh\ndpkg -l | grep -c ^ii # edit ${i}\n`, { mode: 0o755 });
      const build = ["docker", "build", "-q", "-t", "crecipe-bench-debian", context];
      const legacy = { DOCKER_BUILDKIT: "0" };
      writeInit(0);
      time(build, { runs: 1, env: legacy });
      const dockerBuild = time(build, { runs: 5, before: (i) => writeInit(i + 1), env: legacy });
      rows.push({ case: "debian image after an /init edit", crecipe: warm, peer: "docker build, cached base", peerSeconds: dockerBuild, goal: "≤ 0.5×" });

      const runAfterEdit = time(crecipe("debian.rundocker"), { cwd: work, runs: 5, before: editInit, env });
      const buildAndRun = time(["sh", "-c", `${build.join(" ")} >/dev/null && docker run --rm --network=none crecipe-bench-debian`], {
        runs: 5, before: (i) => writeInit(i + 100), env: legacy,
      });
      rows.push({ case: "debian.rundocker after an /init edit", crecipe: runAfterEdit, peer: "docker build + docker run", peerSeconds: buildAndRun });
      spawnSync("docker", ["rmi", "-f", "crecipe-bench-debian", "crecipe-bench-debian-base"]);
    }

    if (fs.existsSync(path.join(work, "out/debian.image"))) {
      const gz = time(crecipe("debianImage", "debian.image.gz"), {
        cwd: work, runs: 3, before: () => fs.rmSync(path.join(work, "out/.crecipe/state/debian.image.gz.json"), { force: true }), env,
      });
      const tarFile = path.join(work, "image.tar");
      fs.writeFileSync(path.join(work, "tar.ts"), `import { imageTar } from ${JSON.stringify(path.join(repo, "lib/mod.ts"))};\nimport { debianImage } from ${JSON.stringify(recipe)};\nexport default imageTar(debianImage);\n`);
      time([process.execPath, path.join(repo, "bin/crecipe.js"), "-q", path.join(work, "tar.ts")], { cwd: work, runs: 1, env });
      fs.renameSync(path.join(work, "out/debian.image.tar"), tarFile);
      const pigz = time(["bash", "-c", `pigz -6 --rsyncable -n -c ${tarFile} > ${work}/peer.gz`], { runs: 3 });
      rows.push({ case: "gz of the Debian image", crecipe: gz, peer: "pigz --rsyncable of its tar", peerSeconds: pigz, goal: "≤ 1×" });
    }
    rows.push(...packageCases(repo, work, source, env));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

/**
 * One package added to the base (less): the bytes of new layer blobs a puller needs with
 * the base split by package vs with the base as one layer, and the time to make those
 * layers again after the base was rebuilt.
 */
function packageCases(repo: string, work: string, source: string, env: Record<string, string>): Row[] {
  if (!source.includes(`variant: "minbase" }`)) return [];
  const recipe = path.join(work, "packages.ts");
  const write = (include: string) => fs.writeFileSync(recipe, source
    .replace(`variant: "minbase" }`, `variant: "minbase"${include} }`)
    .replace("export default", "export const split = packageLayers(base);\nexport const everything ="));
  const build = () => {
    const trace = path.join(work, "packages.trace.json");
    time([process.execPath, path.join(repo, "bin/crecipe.js"), "-q", "-o", path.join(work, "pk"), `--trace=${trace}`, recipe, "split", "debootstrap.layer"], { cwd: work, runs: 1, env });
    const events = JSON.parse(fs.readFileSync(trace, "utf8")).traceEvents as { name: string; ph: string; cat?: string; dur: number }[];
    const ms = (name: string) => events.filter((e) => e.ph === "X" && e.cat === "target" && e.name === name).reduce((n, e) => n + e.dur / 1000, 0);
    return { split: ms("debootstrap.pkglayers") / 1000, layer: ms("debootstrap.layer") / 1000 };
  };
  const groups = () => JSON.parse(fs.readFileSync(path.join(work, "pk/debootstrap.pkglayers/layers.json"), "utf8")) as { name: string; digest: string; size: number }[];
  write("");
  build();
  const before = new Map(groups().map((g) => [g.name, g.digest]));
  write(`, include: ["less"]`);
  const times = build();
  const fresh = groups().filter((g) => before.get(g.name) !== g.digest).reduce((n, g) => n + g.size, 0);
  const whole = fs.statSync(path.join(work, "pk/debootstrap.layer")).size;
  return [
    { case: "one package added: new layer bytes a puller needs (MB)", crecipe: fresh / 1e6, peer: "the base as one layer", peerSeconds: whole / 1e6, goal: "≤ 0.2×", unit: "MB" },
    { case: "one package added: making the base's layers again", crecipe: times.split, peer: "the base as one layer", peerSeconds: times.layer },
  ];
}
