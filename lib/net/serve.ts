/**
 * serve(dir): a static HTTP server for an out dir, enough for fetchChunked(), zsync and
 * curl: GET and HEAD, byte ranges (one → 206, several → 206 multipart/byteranges, none
 * satisfiable → 416), strong ETags with If-None-Match / If-Match / If-Range, and
 * Last-Modified. Bound to 127.0.0.1 unless told otherwise. Nothing outside `dir` is ever
 * served: `..` is refused and every path is resolved (symlinks too) and checked to stay
 * inside. node:http only; files are streamed, never read whole.
 */
import * as fs from "node:fs";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import * as path from "node:path";
import { CrecipeError } from "../engine/errors.ts";
import { type ByteRange, multipartFraming, parseRange } from "../formats/byteranges.ts";

const require = createRequire(import.meta.url);

/** More ranges than this in one request is an abuse (or a confused client): the whole file is sent. */
const MAX_RANGES = 1000;

/** Where serve() listens and what it logs. */
export interface ServeOptions {
  /** Default 127.0.0.1: the out dir is not published to the network unless asked. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** One line per request (method, path, status, body bytes sent). */
  log?: (line: string) => void;
}

/** A running server: its address and how to stop it. */
export interface Serving {
  /** http://HOST:PORT/ */
  url: string;
  /** The port it listens on (the one picked when asked for 0). */
  port: number;
  /** Stop listening and close every connection. */
  close(): Promise<void>;
}

/**
 * Serve `dir` over HTTP until close().
 *
 * ```ts
 * const server = await serve("out", { port: 0 });
 * console.log(server.url); // http://127.0.0.1:PORT/
 * await server.close();
 * ```
 */
export async function serve(dir: string, options: ServeOptions = {}): Promise<Serving> {
  let root: string;
  try {
    root = fs.realpathSync(dir);
    if (!fs.statSync(root).isDirectory()) throw new Error("not a directory");
  } catch (error) {
    throw new CrecipeError(`cannot serve ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { fix: "give an existing directory, e.g. crecipe serve out" });
  }
  const http = require("node:http") as typeof import("node:http");
  const server: Server = http.createServer((req, res) => {
    handle(root, req, res, options.log).catch((error) => {
      if (!res.headersSent) {
        res.writeHead(500, { "Content-Type": "text/plain" }).end(`internal error: ${(error as Error).message}\n`);
      } else res.destroy();
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(new CrecipeError(`cannot listen on ${host}:${options.port ?? 8000}: ${error.code ?? error.message}`, { fix: "choose another --port (0 picks a free one)" }))
    );
    server.listen(options.port ?? 8000, host, () => resolve());
  });
  const address = server.address() as { port: number };
  const shown = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shown}:${address.port}/`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The file a request path names inside root, or an HTTP status to answer instead. */
function resolvePath(root: string, urlPath: string): { file: string; stat: fs.Stats } | number {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return 400;
  }
  if (decoded.includes("\0") || !decoded.startsWith("/")) return 400;
  const parts = decoded.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) return 403;
  let real: string;
  try {
    real = fs.realpathSync(path.join(root, ...parts));
  } catch {
    return 404;
  }
  if (real !== root && !real.startsWith(root + path.sep)) return 403; // a symlink out of the dir
  const stat = fs.statSync(real, { throwIfNoEntry: false });
  if (!stat) return 404;
  return { file: real, stat };
}

const TYPES: Record<string, string> = {
  ".json": "application/json", ".txt": "text/plain; charset=utf-8", ".html": "text/html; charset=utf-8",
  ".tar": "application/x-tar", ".gz": "application/gzip", ".zst": "application/zstd", ".log": "text/plain; charset=utf-8",
};

/** A strong validator from what stat says: a rewrite, a replacement or a touch changes it. */
function etagOf(stat: fs.Stats): string {
  return `"${stat.ino.toString(16)}-${stat.size.toString(16)}-${Math.round(stat.mtimeMs * 1000).toString(16)}"`;
}

/** Does an If-Match / If-None-Match list name this ETag? (`weak`: W/ prefixes are ignored) */
function matches(list: string, etag: string, weak: boolean): boolean {
  if (list.trim() === "*") return true;
  return list.split(",").some((tag) => {
    const t = tag.trim();
    if (t.startsWith("W/")) return weak && t.slice(2) === etag;
    return t === etag;
  });
}

/** Was the resource not modified since this HTTP date? (seconds; HTTP dates have no fractions) */
const notModifiedSince = (header: string, stat: fs.Stats) => {
  const since = Date.parse(header);
  return !Number.isNaN(since) && Math.floor(stat.mtimeMs / 1000) * 1000 <= since;
};

async function handle(root: string, req: IncomingMessage, res: ServerResponse, log?: (line: string) => void): Promise<void> {
  let sent = 0;
  const urlPath = (req.url ?? "/").split("?")[0];
  res.on("finish", () => log?.(`${req.method} ${urlPath} ${res.statusCode} ${sent}`));
  const plain = (status: number, text: string, headers: Record<string, string | number> = {}) => {
    const body = Buffer.from(text + "\n");
    res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": body.length, ...headers });
    if (req.method !== "HEAD") (res.end(body), (sent += body.length));
    else res.end();
  };
  if (req.method !== "GET" && req.method !== "HEAD") return plain(405, "method not allowed", { Allow: "GET, HEAD" });
  const found = resolvePath(root, urlPath);
  if (typeof found === "number") {
    return plain(found, found === 404 ? "not found" : found === 403 ? "forbidden" : "bad request");
  }
  const { file, stat } = found;
  if (stat.isDirectory()) {
    if (!urlPath.endsWith("/")) return plain(301, "moved", { Location: urlPath + "/" });
    const names = fs.readdirSync(file, { withFileTypes: true }).filter((e) => !e.name.startsWith("."))
      .map((e) => (e.isDirectory() ? e.name + "/" : e.name)).sort();
    const escape = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
    const html = `<!doctype html><title>${escape(urlPath)}</title><pre>\n${names.map((n) => `<a href="${escape(encodeURIComponent(n).replace(/%2F$/, "/"))}">${escape(n)}</a>`).join("\n")}\n</pre>`;
    const body = Buffer.from(html);
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Content-Length": body.length });
    if (req.method !== "HEAD") (res.end(body), (sent += body.length));
    else res.end();
    return;
  }
  if (!stat.isFile()) return plain(403, "forbidden");

  const etag = etagOf(stat);
  const lastModified = new Date(stat.mtimeMs).toUTCString();
  const common = { "ETag": etag, "Last-Modified": lastModified, "Accept-Ranges": "bytes", "Cache-Control": "no-cache" };
  const h = req.headers;
  if (h["if-match"] !== undefined ? !matches(h["if-match"], etag, false) : h["if-unmodified-since"] !== undefined && !notModifiedSince(h["if-unmodified-since"], stat)) {
    return plain(412, "precondition failed", common);
  }
  if (h["if-none-match"] !== undefined ? matches(h["if-none-match"], etag, true) : h["if-modified-since"] !== undefined && notModifiedSince(h["if-modified-since"], stat)) {
    res.writeHead(304, common).end();
    return;
  }
  const type = TYPES[path.extname(file)] ?? "application/octet-stream";
  const size = stat.size;
  let ranges: ByteRange[] | "unsatisfiable" | undefined;
  if (req.method === "GET" && typeof h.range === "string") {
    const ifRange = typeof h["if-range"] === "string" ? h["if-range"].trim() : undefined;
    // If-Range: the ranges only if the file is still the one the client has part of.
    const current = ifRange === undefined || (ifRange.startsWith('"') ? ifRange === etag : ifRange === lastModified);
    if (current) ranges = parseRange(h.range, size);
    if (Array.isArray(ranges) && ranges.length > MAX_RANGES) ranges = undefined;
  }
  if (ranges === "unsatisfiable") return plain(416, "range not satisfiable", { ...common, "Content-Range": `bytes */${size}` });

  const fd = await new Promise<number>((resolve, reject) => fs.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW, (e, f) => (e ? reject(e) : resolve(f))));
  try {
    if (!ranges) {
      res.writeHead(200, { ...common, "Content-Type": type, "Content-Length": size });
      if (req.method === "GET") sent += await send(res, fd, 0, size - 1);
    } else if (ranges.length === 1) {
      const [r] = ranges;
      res.writeHead(206, { ...common, "Content-Type": type, "Content-Length": r.end - r.start + 1, "Content-Range": `bytes ${r.start}-${r.end}/${size}` });
      sent += await send(res, fd, r.start, r.end);
    } else {
      const boundary = `crecipe-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
      const framing = multipartFraming(ranges, size, type, boundary);
      res.writeHead(206, { ...common, "Content-Type": `multipart/byteranges; boundary=${boundary}`, "Content-Length": framing.length });
      for (let i = 0; i < ranges.length; i++) {
        if (!(await write(res, framing.heads[i]))) return;
        sent += framing.heads[i].length;
        sent += await send(res, fd, ranges[i].start, ranges[i].end);
      }
      if (await write(res, framing.tail)) sent += framing.tail.length;
    }
    res.end();
  } finally {
    fs.close(fd, () => {});
  }
}

/** Write with backpressure; false when the client went away. */
function write(res: ServerResponse, data: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(data)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on("drain", onDrain);
    res.on("close", onClose);
  });
}

const BLOCK = 256 * 1024;

/** Stream bytes start..end (inclusive) of fd; the number sent (less if the client left or the file shrank). */
async function send(res: ServerResponse, fd: number, start: number, end: number): Promise<number> {
  let sent = 0;
  for (let at = start; at <= end;) {
    const buffer = Buffer.allocUnsafe(Math.min(BLOCK, end - at + 1));
    const n = await new Promise<number>((resolve, reject) => fs.read(fd, buffer, 0, buffer.length, at, (e, n) => (e ? reject(e) : resolve(n))));
    if (n === 0) {
      res.destroy(); // the file shrank under us: a short body the client must see as an error
      return sent;
    }
    if (!(await write(res, n === buffer.length ? buffer : buffer.subarray(0, n)))) return sent;
    sent += n;
    at += n;
  }
  return sent;
}
