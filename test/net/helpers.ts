/** Shared by the net tests: layer-like files, `crecipe serve` as a child, a misbehaving proxy. */
import { type ChildProcess, spawn } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { tarEnd, tarHeader, tarPadding } from "../../lib/formats/tar.ts";
import { cli, crecipeAsync, waitFor } from "../helpers.ts";

/** `size` deterministic pseudo-random bytes (AES-CTR of zeros under a key made from `seed`). */
export function pseudoRandom(size: number, seed: string): Buffer {
  const key = createHash("sha256").update(seed).digest().subarray(0, 16);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

/**
 * A layer-like tar of `files` files of `fileSize` pseudo-random bytes each, written to
 * `file` a member at a time; `changes` gives other contents (and sizes) to some members.
 */
export function writeLayer(file: string, files: number, fileSize: number, changes: Record<number, { size: number; seed: string }> = {}): void {
  const fd = fs.openSync(file, "w");
  try {
    for (let i = 0; i < files; i++) {
      const change = changes[i];
      const data = pseudoRandom(change?.size ?? fileSize, change?.seed ?? `file ${i}`);
      const name = `usr/lib/data/${String(Math.floor(i / 100)).padStart(2, "0")}/file${i}.bin`;
      fs.writeSync(fd, tarHeader({ path: Buffer.from(name), type: "file", mode: 0o644, uid: 0, gid: 0, size: data.length }, 0));
      fs.writeSync(fd, data);
      fs.writeSync(fd, tarPadding(data.length));
    }
    fs.writeSync(fd, tarEnd());
  } finally {
    fs.closeSync(fd);
  }
}

export function sha256File(file: string): string {
  const hash = createHash("sha256");
  const fd = fs.openSync(file, "r");
  const buffer = Buffer.allocUnsafe(1 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0;) hash.update(buffer.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/** A recipe that copies host files into out/ and indexes them: out/NAME and out/NAME.chunks. */
export function indexRecipe(dir: string, files: Record<string, string>): string {
  const mod = JSON.stringify(path.resolve(import.meta.dirname, "../../lib/mod.ts"));
  const lines = Object.entries(files).map(([name, source], i) =>
    `const f${i} = file(${JSON.stringify(name)}, (out, ctx) => { ctx.dependOn(${JSON.stringify(source)}); copyFileSync(${JSON.stringify(source)}, out); });`
  );
  const recipe = path.join(dir, "publish.ts");
  fs.writeFileSync(recipe, `import { chunks, file } from ${mod};\nimport { copyFileSync } from "node:fs";\n${lines.join("\n")}\nexport default [${Object.keys(files).map((_, i) => `chunks(f${i})`).join(", ")}];\n`);
  return recipe;
}

/** `crecipe serve DIR --port 0` as a child process; resolves once it listens. */
export async function startServe(dir: string, extra: string[] = []): Promise<{ url: string; port: number; log: () => string; stop: () => Promise<void>; child: ChildProcess }> {
  const { child, done } = crecipeAsync(dir, ["serve", dir, "--port", "0", ...extra]);
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  await waitFor(() => /at http:\/\/127\.0\.0\.1:\d+\//.test(err) || child.exitCode !== null, 20000);
  const m = /at (http:\/\/127\.0\.0\.1:(\d+)\/)/.exec(err);
  if (!m) throw new Error(`crecipe serve did not start: ${err}`);
  return {
    url: m[1],
    port: Number(m[2]),
    log: () => err,
    child,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await done;
    },
  };
}

export interface FetchRun {
  code: number | null;
  signal: string | null;
  err: string;
  out: string;
  report?: Record<string, number | string>;
}

/** `crecipe fetch ARGS --json` in `cwd`, as a child process. */
export function startFetch(cwd: string, args: string[], env: Record<string, string> = {}) {
  const { child, done } = crecipeAsync(cwd, ["fetch", ...args, "--json"], env);
  return {
    child,
    done: done.then((r): FetchRun => {
      let report;
      try {
        report = r.out.trim() ? JSON.parse(r.out.trim().split("\n").at(-1)!) : undefined;
      } catch { /* not JSON */ }
      return { ...r, report };
    }),
  };
}

export function runFetch(cwd: string, args: string[], env: Record<string, string> = {}): Promise<FetchRun> {
  return startFetch(cwd, args, env).done;
}

export interface ProxyHooks {
  /** Change the request's headers before it goes to the origin (n counts GETs of the file, from 0). */
  headers?: (headers: http.IncomingHttpHeaders, n: number, url: string) => http.IncomingHttpHeaders;
  /**
   * Bytes of the answer's body as they pass: return other bytes, "drop" to cut the
   * connection, or { cut: k } to pass the block's first k bytes on and then cut it.
   */
  body?: (data: Buffer, sent: number, n: number, url: string) => Buffer | "drop" | { cut: number };
  /** Called once an answer has been passed on whole. */
  after?: (n: number, url: string) => void;
  /** Milliseconds to wait before passing each block on (a slow network). */
  delayMs?: number;
}

/**
 * A proxy in front of `crecipe serve` that misbehaves as told: drops connections, changes
 * bytes, strips Range, slows down. Counts the data requests (GETs of the file itself).
 */
export async function startProxy(originPort: number, hooks: ProxyHooks) {
  let gets = 0;
  const server = http.createServer((req, res) => {
    const isData = req.method === "GET" && !req.url!.endsWith(".chunks");
    const n = isData ? gets++ : -1;
    let headers = { ...req.headers };
    if (isData && hooks.headers) headers = hooks.headers(headers, n, req.url!);
    const upstream = http.request({ host: "127.0.0.1", port: originPort, path: req.url, method: req.method, headers, agent: false }, async (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      let sent = 0;
      answer.pause();
      for await (const block of answer) {
        if (hooks.delayMs) await new Promise((r) => setTimeout(r, hooks.delayMs));
        const data = isData && hooks.body ? hooks.body(block as Buffer, sent, n, req.url!) : (block as Buffer);
        if (typeof data === "object" && "cut" in data) {
          await new Promise<void>((r) => res.write((block as Buffer).subarray(0, data.cut), () => r()));
          res.socket?.destroy();
          answer.destroy();
          return;
        }
        if (data === "drop") {
          res.socket?.destroy();
          answer.destroy();
          return;
        }
        sent += data.length;
        if (!res.write(data)) await new Promise((r) => res.once("drain", r));
        if (res.destroyed) return;
      }
      res.end();
      if (isData) hooks.after?.(n, req.url!);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    gets: () => gets,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export { cli };
