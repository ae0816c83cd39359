/**
 * The little HTTP a chunked fetch needs, on node:http(s) (Node and Deno alike): one
 * request with a timeout and an abort signal, a body read whole (small: an index) or
 * streamed to a callback, and a body that ends early seen as the error it is.
 */
import type { Agent, IncomingMessage } from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** No byte for this long: the connection is taken as dead (and retried). */
const IDLE_MS = 30_000;

/** A failure that another try may not have: a dropped connection, a 5xx, a short body. */
export class TransientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TransientError";
  }
}

export interface Client {
  request(url: string, options: { method?: string; headers?: Record<string, string>; signal?: AbortSignal }): Promise<IncomingMessage>;
  close(): void;
}

/** Keep-alive connections (at most `sockets` at once) to the servers asked. */
export function client(sockets: number): Client {
  const http = require("node:http") as typeof import("node:http");
  const https = require("node:https") as typeof import("node:https");
  const agents: Record<string, Agent> = {
    "http:": new http.Agent({ keepAlive: true, maxSockets: sockets }),
    "https:": new https.Agent({ keepAlive: true, maxSockets: sockets }),
  };
  return {
    request(url, options) {
      const parsed = new URL(url);
      const module = parsed.protocol === "https:" ? https : http;
      if (!agents[parsed.protocol]) return Promise.reject(new Error(`${parsed.protocol} URLs are not supported (http: or https:)`));
      return new Promise((resolve, reject) => {
        const req = module.request(parsed, {
          method: options.method ?? "GET",
          headers: { "Accept-Encoding": "identity", "User-Agent": "crecipe", ...options.headers },
          agent: agents[parsed.protocol],
          signal: options.signal,
        }, resolve);
        req.setTimeout(IDLE_MS, () => req.destroy(new TransientError(`no answer for ${IDLE_MS / 1000} s`)));
        req.on("error", (error) => reject(options.signal?.aborted ? options.signal.reason : transient(error)));
        req.end();
      });
    },
    close() {
      for (const agent of Object.values(agents)) agent.destroy();
    },
  };
}

const WHAT: Record<string, string> = {
  ECONNRESET: "the connection was reset", ECONNREFUSED: "the connection was refused", ETIMEDOUT: "the connection timed out",
  EHOSTUNREACH: "the host is unreachable", ENOTFOUND: "the host name is unknown", EPIPE: "the connection was closed",
};

/** Network errors are worth another try; an abort is not. */
function transient(error: Error): Error {
  if (error.name === "AbortError" || error instanceof TransientError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const what = code && WHAT[code];
  return new TransientError(what ? `${what} (${code})` : (code ?? error.message), { cause: error });
}

/**
 * Stream a response body to `onData`; resolves when it ended whole, rejects when the
 * connection dropped first (or `onData` threw: the response is then torn down).
 */
export function consume(res: IncomingMessage, onData: (data: Buffer) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      res.destroy();
      reject(error);
    };
    res.on("data", (data: Buffer) => {
      if (settled) return;
      try {
        onData(data);
      } catch (error) {
        fail(error);
      }
    });
    res.on("end", () => {
      if (settled) return;
      settled = true;
      resolve();
    });
    res.on("error", (error) => fail(signal?.aborted ? signal.reason : transient(error)));
    res.on("close", () => fail(signal?.aborted ? signal.reason : new TransientError("the connection closed in the middle of the body")));
  });
}

/** A whole (small) body; more than `limit` bytes is an error. */
export async function readBody(res: IncomingMessage, limit: number, signal?: AbortSignal): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  await consume(res, (data) => {
    size += data.length;
    if (size > limit) throw new Error(`more than ${limit} bytes`);
    parts.push(data);
  }, signal);
  return Buffer.concat(parts);
}

/** Throw away a body (so the connection can be used again). */
export function discard(res: IncomingMessage): void {
  res.resume();
}
