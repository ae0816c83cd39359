/**
 * Pushing to a registry, beside skopeo measured in the same run, both to the same
 * loopback docker-registry (Debian's 2.8), both gzip-compressing the layers:
 *  - a cold push of recipes/simple.ts's image to a repository that has none of its blobs
 *    (crecipe: the CLI, gzip of both layers, upload; skopeo: `copy --dest-compress`);
 *  - a push of the same image again (crecipe with its push output removed, so it asks
 *    the registry about every blob; skopeo the same copy again);
 *  - a shared cache (--cache): recipes/debian.ts's image built on a "second machine" (a
 *    fresh out dir) from a warm cache, vs the same build cold without one; and the cold
 *    build that stores into the cache, vs the cold build alone.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { type Row, time } from "./util.ts";

async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** recipes/debian.ts's image: a cold build, a cold build storing into a cache, and second machines taking it from the cache. */
function cacheCases(repo: string, work: string, host: string): Row[] {
  if (spawnSync("sh", ["-c", "command -v mmdebstrap"]).status !== 0) return [];
  const env = { SOURCE_DATE_EPOCH: "1700000000" };
  const recipe = path.join(repo, "recipes/debian.ts");
  const build = (out: string, ...extra: string[]) => [process.execPath, path.join(repo, "bin/crecipe.js"), "-q", "-o", path.join(work, out), ...extra, recipe, "debianImage"];
  const cache = ["--cache", `registry://${host}/team/cache`];
  // Each run in an out dir of its own (big trees are not deleted and made again in a loop).
  const colds: number[] = [];
  for (let i = 0; i < 2; i++) colds.push(time(build(`cold${i}`), { runs: 1, env }));
  const storing = time(build("store", ...cache), { runs: 1, env });
  const warms: number[] = [];
  for (let i = 0; i < 3; i++) warms.push(time(build(`warm${i}`, ...cache), { runs: 1, env }));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const coldSeconds = Math.min(...colds); // the faster cold build: the ratio is not flattered
  return [
    { case: "debian image, second machine, warm shared cache", crecipe: median(warms), peer: "cold build, no cache", peerSeconds: coldSeconds, goal: "≤ 0.1×" },
    { case: "debian image, cold build storing into the cache", crecipe: storing, peer: "cold build, no cache", peerSeconds: coldSeconds },
  ];
}

export async function registryCases(repo: string): Promise<Row[]> {
  if (spawnSync("sh", ["-c", "command -v docker-registry && command -v skopeo"]).status !== 0) return [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "crecipe-bench-registry-"));
  const port = await freePort();
  fs.writeFileSync(path.join(work, "config.yml"), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${work}/storage\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const registry = spawn("docker-registry", ["serve", path.join(work, "config.yml")], { stdio: "ignore" });
  const rows: Row[] = [];
  try {
    for (let i = 0; spawnSync("curl", ["-sf", `http://127.0.0.1:${port}/v2/`]).status !== 0; i++) {
      if (i > 100) throw new Error("docker-registry did not start");
      spawnSync("sleep", ["0.1"]);
    }
    const host = `127.0.0.1:${port}`;
    const out = path.join(work, "out");
    const recipe = path.join(repo, "recipes/simple.ts");
    const crecipe = `"${process.execPath}" ${path.join(repo, "bin/crecipe.js")} -q -o ${out} ${recipe} simpleImage`;
    spawnSync("sh", ["-c", `${crecipe} > /dev/null`], { cwd: work }); // the image, built once
    const image = path.join(out, "simple.image");
    // A fresh repository each run ($n from a counter file), no push record to mount from.
    const next = `n=$(cat ${work}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${work}/n`;
    const forget = () => spawnSync("sh", ["-c", `rm -rf ${out}/*.push ${out}/.crecipe/state/*.push.json`]);
    const cold = time(["sh", "-c", `${next}; ${crecipe} --push ${host}/c$n/simple:1 > /dev/null`], { cwd: work, runs: 7, before: forget });
    const skopeoCold = time(["sh", "-c", `${next}; skopeo copy -q --dest-tls-verify=false --dest-compress oci:${image} docker://${host}/s$n/simple:1`], { runs: 7 });
    rows.push({ case: "push of simple's image, cold (gzip + upload)", crecipe: cold, peer: "skopeo copy --dest-compress", peerSeconds: skopeoCold, goal: "≤ 1×" });
    spawnSync("sh", ["-c", `${crecipe} --push ${host}/again/simple:1 > /dev/null`], { cwd: work });
    spawnSync("sh", ["-c", `skopeo copy -q --dest-tls-verify=false --dest-compress oci:${image} docker://${host}/sagain/simple:1`]);
    const again = time(["sh", "-c", `${crecipe} --push ${host}/again/simple:1 > /dev/null`], { cwd: work, runs: 7, before: forget });
    const skopeoAgain = time(["sh", "-c", `skopeo copy -q --dest-tls-verify=false --dest-compress oci:${image} docker://${host}/sagain/simple:1`], { runs: 7 });
    rows.push({ case: "push of simple's image again (nothing to upload)", crecipe: again, peer: "skopeo copy again", peerSeconds: skopeoAgain, goal: "≤ 1×" });
    rows.push(...cacheCases(repo, work, host));
  } finally {
    registry.kill("SIGKILL");
    fs.rmSync(work, { recursive: true, force: true });
  }
  return rows;
}
