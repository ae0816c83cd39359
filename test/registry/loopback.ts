/**
 * A real registry for the tests: Debian's docker-registry (2.8) on a free loopback port,
 * storage in a temp dir, optionally behind htpasswd (bcrypt, from apache2-utils'
 * htpasswd), and an HTTP proxy in front of it that records every request (so a test can
 * count uploads exactly) and can kill the registry at a chosen request.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { tempDir } from "../helpers.ts";

export const registryBinary = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"].find((p) => fs.existsSync(p));
export const skipRegistry = registryBinary ? false : "no docker-registry (sudo apt-get install docker-registry, or scripts/setup.sh)";

export interface Request {
  method: string;
  url: string;
  status: number;
}

export interface Loopback {
  /** 127.0.0.1:PORT of the proxy: what a reference names. */
  host: string;
  /** Where the registry keeps its blobs (docker/registry/v2/…). */
  storage: string;
  /** Every request the proxy forwarded, with the registry's status. */
  requests: Request[];
  /** Blob uploads that completed (PUT …/blobs/uploads/…?digest= answered 201). */
  uploads(): number;
  /** Kill the registry (SIGKILL) when a request matches, before forwarding it. */
  killWhen(match: (method: string, url: string) => boolean): void;
  /** Start the registry again on the same storage and port. */
  restart(): Promise<void>;
  stop(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

async function waitUp(port: number, child: ChildProcess, log: string): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited ${child.exitCode}:\n${fs.readFileSync(log, "utf8")}`);
    const ok = await new Promise<boolean>((resolve) => {
      http.get(`http://127.0.0.1:${port}/v2/`, (res) => (res.resume(), resolve(true))).on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - start > 15000) throw new Error(`docker-registry did not answer on ${port}:\n${fs.readFileSync(log, "utf8")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start a registry (with basic auth when `auth` is given) and its proxy; both stop when the process exits. */
export async function startRegistry(auth?: { user: string; password: string }): Promise<Loopback> {
  const dir = tempDir("crecipe-registry-");
  const storage = path.join(dir, "storage");
  const port = await freePort();
  const lines = [
    "version: 0.1",
    "log:",
    "  level: warn",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${storage}`,
    "http:",
    `  addr: 127.0.0.1:${port}`,
  ];
  if (auth) {
    const htpasswd = spawnSync("htpasswd", ["-Bbn", auth.user, auth.password], { encoding: "utf8" });
    if (htpasswd.status !== 0) throw new Error(`htpasswd failed (apt-get install apache2-utils): ${htpasswd.stderr}`);
    fs.writeFileSync(path.join(dir, "htpasswd"), htpasswd.stdout.trim() + "\n");
    lines.push("auth:", "  htpasswd:", "    realm: crecipe-test", `    path: ${path.join(dir, "htpasswd")}`);
  }
  const config = path.join(dir, "config.yml");
  fs.writeFileSync(config, lines.join("\n") + "\n");
  const log = path.join(dir, "registry.log");
  let child: ChildProcess;
  const launch = async () => {
    const fd = fs.openSync(log, "a");
    child = spawn(registryBinary!, ["serve", config], { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    await waitUp(port, child, log);
  };
  await launch();
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.on("exit", kill);

  const requests: Request[] = [];
  let killer: ((method: string, url: string) => boolean) | undefined;
  const proxy = http.createServer((req, res) => {
    if (killer?.(req.method!, req.url!)) {
      killer = undefined;
      kill();
      req.socket.destroy();
      return;
    }
    const upstream = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      requests.push({ method: req.method!, url: req.url!, status: answer.statusCode! });
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => req.socket.destroy());
    req.pipe(upstream);
  });
  const proxyPort = await new Promise<number>((resolve) => proxy.listen(0, "127.0.0.1", () => resolve((proxy.address() as net.AddressInfo).port)));
  proxy.unref();
  return {
    host: `127.0.0.1:${proxyPort}`,
    storage,
    requests,
    uploads: () => requests.filter((r) => r.method === "PUT" && r.url.includes("/blobs/uploads/") && r.status === 201).length,
    killWhen: (match) => void (killer = match),
    restart: launch,
    stop() {
      kill();
      proxy.close();
      proxy.closeAllConnections();
    },
  };
}

/** The data file of blob `digest` (sha256:…) in a registry's storage. */
export function blobFile(storage: string, digest: string): string {
  const hex = digest.replace(/^sha256:/, "");
  return path.join(storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
}
