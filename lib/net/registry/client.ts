/**
 * The OCI distribution API, client side, on node:http(s) (Node and Deno alike): blob
 * existence (HEAD), monolithic upload (POST, then PUT ?digest= with the bytes), cross-repo
 * mount (POST ?mount=&from=), blob and manifest reads, manifest PUT. Authentication
 * answers the registry's 401: Basic with the user's credentials, or the Bearer token flow.
 * https unless the registry is on loopback (127.0.0.0/8, localhost, ::1) or `insecure`.
 * Counts what it did, so a caller can say "3 blobs uploaded, 2 already there".
 */
import * as fs from "node:fs";
import type { IncomingMessage } from "node:http";
import { createRequire } from "node:module";
import { CrecipeError } from "../../engine/errors.ts";
import { basicHeader, type Credentials, credentialsFor, parseChallenge } from "./auth.ts";

const require = createRequire(import.meta.url);

/** No byte for this long: the registry is taken as gone. */
const IDLE_MS = 60_000;

/** How to reach a registry. */
export interface RegistryOptions {
  /** Plain http even off loopback (a registry without TLS on a private network). */
  insecure?: boolean;
  signal?: AbortSignal;
  /** Credentials instead of the environment's and docker's config file's. */
  credentials?: Credentials;
}

/** What a client did, for the summary line and the tests. */
export interface RegistryStats {
  requests: number;
  /** Blobs sent (bytes in uploadedBytes). */
  uploaded: number;
  uploadedBytes: number;
  /** Blobs the registry already had in the repository. */
  present: number;
  /** Blobs mounted from another repository of the same registry. */
  mounted: number;
  downloadedBytes: number;
}

/** A body: bytes in memory, or a file streamed from disk. */
export type Body = Buffer | { file: string; size: number };

export interface Answer {
  status: number;
  headers: IncomingMessage["headers"];
  /** The response, unread: read it with text()/bytes() or stream it. */
  res: IncomingMessage;
}

/** 127.0.0.0/8, localhost and ::1: plain http, as docker allows them without TLS. */
export function isLoopback(registry: string): boolean {
  const host = registry.replace(/^\[([^\]]+)\](?::\d+)?$/, "$1").replace(/:\d+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Read a whole (small) response body. */
export function bodyOf(res: IncomingMessage, limit = 8 << 20): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    res.on("data", (d: Buffer) => {
      size += d.length;
      if (size > limit) return res.destroy(new Error(`a registry answer of more than ${limit} bytes`));
      parts.push(d);
    });
    res.on("end", () => resolve(Buffer.concat(parts)));
    res.on("error", reject);
  });
}

/** A client of one registry, for one repository (and the ones it mounts from). */
export class RegistryClient {
  /** http(s)://host[:port] */
  readonly base: string;
  readonly stats: RegistryStats = { requests: 0, uploaded: 0, uploadedBytes: 0, present: 0, mounted: 0, downloadedBytes: 0 };
  #authorization: string | undefined;
  #credentials: Credentials | undefined;
  #credentialsRead = false;
  #agent: import("node:http").Agent;
  #module: typeof import("node:http");

  /** `registry` is host[:port]; `scopes` the repositories and actions a token must grant ("repository:app:pull,push"). */
  constructor(readonly registry: string, readonly scopes: string[], readonly options: RegistryOptions = {}) {
    const host = registry === "docker.io" ? "registry-1.docker.io" : registry;
    const secure = !(options.insecure || isLoopback(registry));
    this.base = `${secure ? "https" : "http"}://${host}`;
    this.#module = secure ? require("node:https") : require("node:http");
    this.#agent = new this.#module.Agent({ keepAlive: true, maxSockets: 4 });
    if (options.credentials) {
      this.#credentials = options.credentials;
      this.#credentialsRead = true;
    }
  }

  close(): void {
    this.#agent.destroy();
  }

  #creds(): Credentials | undefined {
    if (!this.#credentialsRead) {
      this.#credentials = credentialsFor(this.registry);
      this.#credentialsRead = true;
    }
    return this.#credentials;
  }

  /** One HTTP exchange, no auth handling. */
  #send(method: string, url: string, headers: Record<string, string>, body?: Body): Promise<Answer> {
    this.stats.requests++;
    return new Promise((resolve, reject) => {
      const size = body === undefined ? 0 : Buffer.isBuffer(body) ? body.length : body.size;
      const all: Record<string, string> = { "User-Agent": "crecipe", ...headers };
      if (body !== undefined || method === "PUT" || method === "POST") all["Content-Length"] = String(size);
      const req = this.#module.request(url, { method, headers: all, agent: this.#agent, signal: this.options.signal }, (res) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, res });
      });
      req.setTimeout(IDLE_MS, () => req.destroy(new Error(`no answer for ${IDLE_MS / 1000} s`)));
      req.on("error", (error: NodeJS.ErrnoException) => reject(this.options.signal?.aborted ? this.options.signal.reason : this.#unreachable(error)));
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        const stream = fs.createReadStream(body.file);
        stream.on("error", (error) => req.destroy(error));
        stream.pipe(req);
      }
    });
  }

  #unreachable(error: NodeJS.ErrnoException): CrecipeError {
    const what = error.code === "ECONNREFUSED" ? "the connection was refused" : error.code === "ECONNRESET" ? "the connection was reset" : error.code === "ENOTFOUND" ? "the host name is unknown" : (error.code ?? error.message);
    const fix = this.base.startsWith("https:") && /EPROTO|SSL|wrong version/i.test(String(error.message))
      ? `the registry does not speak TLS: use --insecure (or { insecure: true }) for a plain-http registry`
      : `check that the registry at ${this.registry} is running and reachable, then build again`;
    return new CrecipeError(`cannot reach the registry ${this.registry} (${this.base}): ${what}`, { fix, cause: error });
  }

  /**
   * A request with authentication: a 401 is answered once (Basic or Bearer, as the
   * challenge asks) and the request sent again; a second 401 is the credentials' fault.
   */
  async request(method: string, pathOrUrl: string, headers: Record<string, string> = {}, body?: Body): Promise<Answer> {
    const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : `${this.base}${pathOrUrl}`;
    const withAuth = () => (this.#authorization ? { ...headers, Authorization: this.#authorization } : headers);
    const sent = this.#authorization;
    let answer = await this.#send(method, url, withAuth(), body);
    if (answer.status !== 401) return answer;
    const challenge = String(answer.headers["www-authenticate"] ?? "");
    answer.res.resume();
    // Another request may have authenticated meanwhile (uploads run side by side): use its answer.
    if (this.#authorization === sent) await this.#authenticate(challenge, sent !== undefined);
    answer = await this.#send(method, url, withAuth(), body);
    if (answer.status === 401) {
      answer.res.resume();
      throw this.#refused();
    }
    return answer;
  }

  #refused(): CrecipeError {
    const creds = this.#creds();
    return creds
      ? new CrecipeError(`the registry ${this.registry} refused the credentials of user "${creds.username}" (from ${creds.source})`, {
        fix: `check the user and password: set CRECIPE_REGISTRY_USER and CRECIPE_REGISTRY_PASSWORD, or run: docker login ${this.registry}`,
      })
      : new CrecipeError(`the registry ${this.registry} wants credentials, and none are set`, {
        fix: `set CRECIPE_REGISTRY_USER and CRECIPE_REGISTRY_PASSWORD, or run: docker login ${this.registry}`,
      });
  }

  async #authenticate(header: string, retried: boolean): Promise<void> {
    const { scheme, params } = parseChallenge(header);
    const creds = this.#creds();
    if (scheme === "basic") {
      if (!creds || retried) throw this.#refused();
      this.#authorization = basicHeader(creds);
      return;
    }
    if (scheme !== "bearer" || !params.realm) {
      throw new CrecipeError(`the registry ${this.registry} asks for authentication crecipe does not know: ${JSON.stringify(header)}`, {
        fix: "use a registry with Basic or Bearer token authentication",
      });
    }
    // The token flow: GET realm?service=…&scope=… (with Basic credentials when we have them).
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set("service", params.service);
    for (const scope of new Set([...(params.scope ? params.scope.split(" ") : []), ...this.scopes])) realm.searchParams.append("scope", scope);
    const tokenModule: typeof import("node:http") = realm.protocol === "https:" ? require("node:https") : require("node:http");
    const answer = await new Promise<IncomingMessage>((resolve, reject) => {
      this.stats.requests++;
      const req = tokenModule.request(realm, { headers: creds ? { Authorization: basicHeader(creds), "User-Agent": "crecipe" } : { "User-Agent": "crecipe" }, signal: this.options.signal }, resolve);
      req.on("error", (error: NodeJS.ErrnoException) => reject(this.#unreachable(error)));
      req.end();
    });
    const text = (await bodyOf(answer)).toString("utf8");
    if (answer.statusCode === 401 || answer.statusCode === 403) throw this.#refused();
    let token: string | undefined;
    try {
      const json = JSON.parse(text) as { token?: string; access_token?: string };
      token = json.token ?? json.access_token;
    } catch {
      // handled below
    }
    if (answer.statusCode !== 200 || !token) {
      throw new CrecipeError(`the token server ${realm.origin}${realm.pathname} of ${this.registry} answered ${answer.statusCode} without a token: ${text.slice(0, 200)}`, {
        fix: "check the credentials and that the repository exists and may be pushed or pulled by this user",
      });
    }
    this.#authorization = `Bearer ${token}`;
  }

  /** A failure the registry explained (its JSON errors), as one message. */
  async failure(what: string, answer: Answer): Promise<CrecipeError> {
    const text = (await bodyOf(answer.res).catch(() => Buffer.alloc(0))).toString("utf8");
    let detail = text.slice(0, 300);
    try {
      const json = JSON.parse(text) as { errors?: { code: string; message: string }[] };
      if (json.errors?.length) detail = json.errors.map((e) => `${e.code}: ${e.message}`).join("; ");
    } catch {
      // not JSON: the text as it is
    }
    const fix = answer.status === 403
      ? "the user may not do this: check its permissions on the repository"
      : answer.status >= 500
      ? "the registry failed: check its log, then build again"
      : "check the reference (registry, repository, tag) and build again";
    return new CrecipeError(`${what}: the registry ${this.registry} answered ${answer.status}${detail ? ` (${detail})` : ""}`, { fix });
  }

  /** Is blob `digest` (sha256:…) in `repository`? */
  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const answer = await this.request("HEAD", `/v2/${repository}/blobs/${digest}`);
    answer.res.resume();
    if (answer.status === 200) return true;
    if (answer.status === 404) return false;
    throw await this.failure(`checking blob ${digest} in ${repository}`, answer);
  }

  /**
   * Make blob `digest` present in `repository`: nothing when it is there; a mount when
   * one of `mountFrom` (repositories of this registry) has it; else an upload of `body`.
   */
  async putBlob(repository: string, digest: string, body: Body, mountFrom: string[] = []): Promise<"present" | "mounted" | "uploaded"> {
    if (await this.hasBlob(repository, digest)) {
      this.stats.present++;
      return "present";
    }
    for (const from of mountFrom) {
      if (from === repository) continue;
      const answer = await this.request("POST", `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`);
      answer.res.resume();
      if (answer.status === 201) {
        this.stats.mounted++;
        return "mounted";
      }
      // 202: the registry opened an upload instead (it could not mount); finish it below.
      if (answer.status === 202 && answer.headers.location) return await this.#finishUpload(repository, digest, String(answer.headers.location), body);
      if (answer.status >= 400) throw await this.failure(`mounting blob ${digest} into ${repository} from ${from}`, answer);
    }
    const answer = await this.request("POST", `/v2/${repository}/blobs/uploads/`);
    answer.res.resume();
    if (answer.status !== 202 || !answer.headers.location) throw await this.failure(`starting the upload of ${digest} to ${repository}`, answer);
    return await this.#finishUpload(repository, digest, String(answer.headers.location), body);
  }

  async #finishUpload(repository: string, digest: string, location: string, body: Body): Promise<"uploaded"> {
    const url = new URL(location, this.base);
    url.searchParams.set("digest", digest);
    const size = Buffer.isBuffer(body) ? body.length : body.size;
    const answer = await this.request("PUT", url.toString(), { "Content-Type": "application/octet-stream" }, body);
    answer.res.resume();
    if (answer.status !== 201) throw await this.failure(`uploading ${digest} (${size} bytes) to ${repository}`, answer);
    this.stats.uploaded++;
    this.stats.uploadedBytes += size;
    return "uploaded";
  }

  /** PUT a manifest under `reference` (a tag or its digest); resolves to the digest the registry gives it. */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string | undefined> {
    const answer = await this.request("PUT", `/v2/${repository}/manifests/${reference}`, { "Content-Type": mediaType }, bytes);
    answer.res.resume();
    if (answer.status !== 201) throw await this.failure(`putting the manifest ${repository}:${reference}`, answer);
    const digest = answer.headers["docker-content-digest"];
    return typeof digest === "string" ? digest : undefined;
  }

  /** GET a manifest (or index): its bytes and media type; undefined when there is none. */
  async getManifest(repository: string, reference: string, accept: string[]): Promise<{ bytes: Buffer; mediaType: string } | undefined> {
    const answer = await this.request("GET", `/v2/${repository}/manifests/${reference}`, { Accept: accept.join(", ") });
    if (answer.status === 404) return answer.res.resume(), undefined;
    if (answer.status !== 200) throw await this.failure(`reading the manifest ${repository}:${reference}`, answer);
    const bytes = await bodyOf(answer.res);
    return { bytes, mediaType: String(answer.headers["content-type"] ?? "").split(";")[0] };
  }

  /** GET a blob, streamed to `onData` (the caller verifies its digest). */
  async getBlob(repository: string, digest: string, onData: (data: Buffer) => void): Promise<void> {
    const answer = await this.request("GET", `/v2/${repository}/blobs/${digest}`);
    if (answer.status !== 200) throw await this.failure(`reading blob ${digest} of ${repository}`, answer);
    await new Promise<void>((resolve, reject) => {
      answer.res.on("data", (data: Buffer) => {
        this.stats.downloadedBytes += data.length;
        try {
          onData(data);
        } catch (error) {
          answer.res.destroy();
          reject(error);
        }
      });
      answer.res.on("end", resolve);
      answer.res.on("error", reject);
      answer.res.on("aborted", () => reject(new CrecipeError(`the registry ${this.registry} closed the connection in the middle of blob ${digest}`, { fix: "build again" })));
    });
  }
}
