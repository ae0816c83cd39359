/**
 * Incremental downloads, each beside its peers in the same run, over the same server
 * (`crecipe serve`, which logs the body bytes of every answer: what each client cost):
 * a ~200 MB layer tar of real files (from /usr) in which one 100 KB file changed, as a
 * `gzip --rsyncable` file and as the plain tar. The old version is the seed.
 *   - crecipe fetch (the index: NAME.chunks beside the file)
 *   - zsync (zsyncmake -Z: the .gz as it is, the way --rsyncable files are meant to be used)
 *   - casync (casync make --store, then casync extract --seed over HTTP; its chunks are
 *     compressed in the store)
 *   - crecipe fetch again, with the seed's own index beside it (what an earlier crecipe
 *     fetch of the old version leaves: FILE.chunks), so the seed is read by it, not chunked
 * Bytes include every index; times are the whole client run (seed reading included).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { encodeChunkIndex } from "../lib/formats/chunks.ts";
import { tarEnd, tarHeader, tarPadding } from "../lib/formats/tar.ts";
import { indexFile } from "../lib/targets/chunks.ts";
import { measure, type Row } from "./util.ts";

const LAYER_BYTES = 200e6;
const EDIT = 100_000;

function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Files of /usr, sorted, up to ~200 MB (none over 4 MB): what a Debian layer holds. */
function usrFiles(): string[] {
  const files: string[] = [];
  let bytes = 0;
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    } catch {
      return;
    }
    for (const entry of entries) {
      if (bytes >= LAYER_BYTES) return;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        const size = fs.statSync(full).size;
        if (size > 4e6) continue;
        files.push(full);
        bytes += size;
      }
    }
  };
  walk("/usr/share");
  walk("/usr/lib");
  return files;
}

/** A tar of `files` with edit-me.bin (100 KB, `version`) in the middle. */
function writeTar(out: string, files: string[], version: number): void {
  const fd = fs.openSync(out, "w");
  const add = (name: string, data: Buffer) => {
    fs.writeSync(fd, tarHeader({ path: Buffer.from(name), type: "file", mode: 0o644, uid: 0, gid: 0, size: data.length }, 0));
    fs.writeSync(fd, data);
    fs.writeSync(fd, tarPadding(data.length));
  };
  files.forEach((file, i) => {
    if (i === files.length >> 1) add("usr/share/app/edit-me.bin", pseudoRandom(EDIT, version));
    add(file.slice(1), fs.readFileSync(file));
  });
  fs.writeSync(fd, tarEnd());
  fs.closeSync(fd);
}

/** old/new .tar and .tar.gz, made once and kept (~800 MB) in the bench cache. */
function pair(): string {
  const dir = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "crecipe-bench", "chunks");
  if (fs.existsSync(path.join(dir, ".complete"))) return dir;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const files = usrFiles();
  for (const [name, version] of [["old", 1], ["new", 2]] as const) {
    writeTar(path.join(dir, `${name}.tar`), files, version);
    sh(`gzip --rsyncable -6 -n -c ${name}.tar > ${name}.tar.gz`, dir);
  }
  fs.writeFileSync(path.join(dir, ".complete"), `${files.length} files\n`);
  return dir;
}

function sh(command: string, cwd?: string): string {
  const r = spawnSync("bash", ["-c", command], { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${command}: ${r.stderr}`);
  return r.stdout;
}

const has = (tool: string) => spawnSync("bash", ["-c", `command -v ${tool}`]).status === 0;

function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** `crecipe serve DIR` with its request log: body bytes sent between two marks. */
async function startServe(repo: string, dir: string) {
  const child: ChildProcess = spawn(process.execPath, [path.join(repo, "bin/crecipe.js"), "serve", dir, "--port", "0"], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (d) => (log += d));
  for (let i = 0; i < 400 && !/at http:\/\/127\.0\.0\.1:\d+\//.test(log); i++) await new Promise((r) => setTimeout(r, 25));
  const url = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(log)?.[1];
  if (!url) throw new Error(`crecipe serve did not start: ${log}`);
  return {
    url,
    /** Body bytes (and requests) the server sent while `run` ran. */
    async bytesOf(run: () => void): Promise<{ bytes: number; requests: number }> {
      // Lines of earlier runs (spawnSync blocks this loop) are read in first.
      await new Promise((r) => setTimeout(r, 300));
      const from = log.length;
      run();
      await new Promise((r) => setTimeout(r, 200)); // the last log lines
      const lines = log.slice(from).split("\n").filter((l) => /^(GET|HEAD) /.test(l));
      return { bytes: lines.reduce((n, l) => n + Number(l.split(" ").at(-1)), 0), requests: lines.length };
    },
    stop: () => child.kill("SIGTERM"),
  };
}

export async function chunkCases(repo: string): Promise<Row[]> {
  const rows: Row[] = [];
  const source = pair();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "crecipe-bench-chunks-"));
  const www = path.join(work, "www");
  fs.mkdirSync(www);
  const peers = { zsync: has("zsync") && has("zsyncmake"), casync: has("casync") };
  for (const [tool, ok] of Object.entries(peers)) if (!ok) console.error(`bench: chunks: ${tool} is not installed (apt-get install ${tool}): its rows are skipped`);
  const server = await startServe(repo, www);
  try {
    for (const file of ["new.tar.gz", "new.tar"]) {
      const old = path.join(source, file.replace("new", "old"));
      fs.linkSync(path.join(source, file), path.join(www, file));
      const label = file.endsWith(".gz") ? "200 MB layer.gz (--rsyncable)" : "200 MB layer tar";
      fs.writeFileSync(path.join(www, `${file}.chunks`), encodeChunkIndex(await indexFile(path.join(www, file))));
      if (peers.zsync) sh(`zsyncmake -Z -u ${file} -o ${file}.zsync ${file}`, www);
      if (peers.casync) sh(`casync make --store=store.castr ${file}.caibx ${file}`, www);
      const want = sha256(path.join(www, file));
      const out = path.join(work, "got");
      const indexedSeed = path.join(work, `seed-${file}`);
      fs.linkSync(old, indexedSeed);
      fs.writeFileSync(`${indexedSeed}.chunks`, encodeChunkIndex(await indexFile(old)));
      const clean = () => {
        for (const name of fs.readdirSync(work)) if (name.startsWith("got")) fs.rmSync(path.join(work, name), { force: true });
      };
      const clients: Record<string, string[]> = {
        crecipe: [process.execPath, path.join(repo, "bin/crecipe.js"), "fetch", `${server.url}${file}`, "--seed", old, "-o", out, "-q"],
        crecipeIndexed: [process.execPath, path.join(repo, "bin/crecipe.js"), "fetch", `${server.url}${file}`, "--seed", indexedSeed, "-o", out, "-q"],
        zsync: ["zsync", "-q", "-i", old, "-o", out, `${server.url}${file}.zsync`],
        casync: ["casync", "extract", `--store=${server.url}store.castr`, `--seed=${old}`, `${server.url}${file}.caibx`, out],
      };
      const results: Record<string, { bytes: number; seconds: number }> = {};
      for (const [name, command] of Object.entries(clients)) {
        if (!name.startsWith("crecipe") && !peers[name as keyof typeof peers]) continue;
        clean();
        const { bytes, requests } = await server.bytesOf(() => {
          const r = spawnSync(command[0], command.slice(1), { cwd: work, encoding: "utf8" });
          if (r.status !== 0) throw new Error(`${command.join(" ")}: ${r.stderr}`);
        });
        if (sha256(out) !== want) throw new Error(`${name} made a wrong ${file}`);
        const { seconds } = measure(command, { cwd: work, runs: 5, before: clean });
        results[name] = { bytes, seconds };
        console.error(`bench: chunks: ${name} ${file}: ${(bytes / 1e3).toFixed(1)} kB in ${requests} requests, ${seconds.toFixed(3)} s`);
      }
      for (const peer of ["zsync", "casync"]) {
        const theirs = results[peer];
        if (!theirs) continue;
        const how = peer === "zsync" ? "zsync -i OLD (zsyncmake -Z)" : "casync extract --seed=OLD";
        rows.push({ case: `fetch ${label}, 100 KB file changed: bytes (kB)`, crecipe: results.crecipe.bytes / 1e3, peer: how, peerSeconds: theirs.bytes / 1e3, goal: "< 1×", unit: "kB" });
        rows.push({ case: `fetch ${label}, 100 KB file changed: time`, crecipe: results.crecipe.seconds, peer: how, peerSeconds: theirs.seconds, goal: "< 1×" });
      }
      if (results.zsync) {
        rows.push({ case: `fetch ${label}, 100 KB file changed: time, the seed's index beside it`, crecipe: results.crecipeIndexed.seconds, peer: "zsync -i OLD (zsyncmake -Z)", peerSeconds: results.zsync.seconds, goal: "< 1×" });
      }
    }
  } finally {
    server.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
  return rows;
}
