/**
 * recipes/debian.ts beside its peers, measured in the same run:
 *  - cold debian.runlocal (fresh out dir) vs `mmdebstrap --variant=minbase` alone;
 *  - warm rebuild of the image after an /init edit vs `docker build` of the same change
 *    on a cached base (the base layer imported into Docker);
 *  - gz of the image vs pigz --rsyncable.
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

    const cold = time(crecipe("debian.runlocal"), { cwd: work, runs: 1, env });
    const alone = time(["mmdebstrap", "--variant=minbase", "-q", "bookworm", path.join(work, "alone.tar")], { runs: 1, env });
    rows.push({ case: "cold debian.runlocal", crecipe: cold, peer: "mmdebstrap minbase alone", peerSeconds: alone, goal: "≤ 1.3×" });

    if (spawnSync("docker", ["info"]).status === 0) {
      time(crecipe("debianImage"), { cwd: work, runs: 1, env });
      let edit = 0;
      const editInit = () => {
        edit++;
        fs.writeFileSync(recipe, source.replace("dpkg -l | grep -c ^ii", `dpkg -l | grep -c ^ii # edit ${edit}`));
      };
      const warm = time(crecipe("debianImage"), { cwd: work, runs: 3, before: editInit, env });
      const context = path.join(work, "context");
      fs.mkdirSync(context);
      spawnSync("docker", ["import", path.join(work, "out/debootstrap.layer"), "crecipe-bench-debian-base"]);
      fs.writeFileSync(path.join(context, "Dockerfile"), "FROM crecipe-bench-debian-base\nCOPY init /init\nCMD [\"/init\"]\n");
      const writeInit = (i: number) => fs.writeFileSync(path.join(context, "init"), `#!/bin/sh\ndpkg -l | grep -c ^ii # edit ${i}\n`, { mode: 0o755 });
      writeInit(0);
      time(["docker", "build", "-q", "-t", "crecipe-bench-debian", context], { runs: 1, env: { DOCKER_BUILDKIT: "0" } });
      const docker = time(["docker", "build", "-q", "-t", "crecipe-bench-debian", context], { runs: 3, before: (i) => writeInit(i + 1), env: { DOCKER_BUILDKIT: "0" } });
      spawnSync("docker", ["rmi", "-f", "crecipe-bench-debian", "crecipe-bench-debian-base"]);
      rows.push({ case: "warm rebuild after /init edit", crecipe: warm, peer: "docker build, cached base", peerSeconds: docker, goal: "< 1×" });
    }

    const image = path.join(work, "out/debian.image");
    if (fs.existsSync(image)) {
      const gz = time(crecipe("debianImage", "debian.image.gz"), { cwd: work, runs: 3, before: () => fs.rmSync(path.join(work, "out/.crecipe/state/debian.image.gz.json"), { force: true }), env });
      const pigz = time(["bash", "-c", `pigz -6 --rsyncable -n -c ${image} > ${work}/peer.gz`], { runs: 3 });
      rows.push({ case: "gz of the Debian image", crecipe: gz, peer: "pigz --rsyncable", peerSeconds: pigz, goal: "≤ 1×" });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return rows;
}
