/**
 * A shared build cache in an OCI registry (`--cache registry://host/repo`): what one
 * machine built, another takes instead of building (engine/remote.ts says when).
 *
 * In the repository, per target build:
 *   tag i-<key>       an OCI artifact: a config blob (the target's record: stamp, value,
 *                     output kind) and one blob holding the output (the file itself, or
 *                     a tar of the directory), pushed blobs first and manifest last, so
 *                     a push cut short leaves nothing a reader would take;
 *   tag k-<identity>  an artifact whose config lists the dependency lists builds of that
 *                     identity recorded, newest first, each with the key it gave.
 * Everything read is checked against its digest, and the engine checks that the output
 * hashes to the stamp it was stored with: a damaged or missing blob is a miss, so the
 * target is built, never taken wrong.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { CrecipeError } from "../engine/errors.ts";
import { hashFile, sha256Hex } from "../engine/hash.ts";
import { linkOrCopy, OutputFile } from "../engine/io.ts";
import { walkSorted } from "../engine/walk.ts";
import type { Candidate, Fetched, RemoteCache, StoreEntry, Upstream } from "../engine/remote.ts";
import { MEDIA } from "../formats/oci.ts";
import { childProcess } from "../runtime.ts";
import { bodyOf, RegistryClient } from "./registry/client.ts";

/** The artifact type of both kinds of cache manifest, and their config blobs' media types. */
export const CACHE_MEDIA = {
  artifact: "application/vnd.crecipe.cache.v1",
  output: "application/vnd.crecipe.output.v1+json",
  candidates: "application/vnd.crecipe.candidates.v1+json",
  file: "application/vnd.crecipe.output.file.v1",
  tree: MEDIA.layer,
} as const;

/** Dependency lists kept per identity. */
const KEEP = 16;

/** What the output's record (the i-<key> config blob) says. */
interface OutputRecord {
  v: 1;
  target: string;
  output: "file" | "dir" | "symlink" | "none";
  stamp: string;
  value: unknown;
  outHash: string | null;
  /** A symlink output's target. */
  link?: string;
  /** A file output's mode (its stamp is its content's: a program must stay executable). */
  mode?: number;
  /** Files of a directory output left out of its tar: each is the output of the upstream target named (path inside the output). */
  refs?: { path: string; target: string; sha256: string }[];
}

/** How to reach a cache's registry, and whether to write to it. */
export interface CacheOptions {
  /** Plain http even off loopback (a registry without TLS on a private network). */
  insecure?: boolean;
  /** Only read: never store (an untrusted client, such as a pull request's CI). */
  readOnly?: boolean;
}

/**
 * The registry and repository of a cache URL: `registry://host[:port]/repo/path`, or
 * the same without the scheme.
 */
export function parseCacheUrl(url: string): { registry: string; repository: string } {
  const rest = url.replace(/^(registry|oci):\/\//, "");
  const slash = rest.indexOf("/");
  const registry = rest.slice(0, slash);
  const repository = rest.slice(slash + 1);
  if (slash <= 0 || !/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(repository)) {
    throw new CrecipeError(`${JSON.stringify(url)} is not a cache in a registry`, {
      fix: "name a registry and a repository: --cache registry://host:port/team/cache",
    });
  }
  return { registry, repository };
}

/**
 * A shared cache in a registry's repository, for `build(targets, { cache })`.
 *
 * ```ts
 * const cache = new RegistryCache("registry://registry.example:5000/team/cache");
 * try {
 *   await build(simpleImage, { cache });
 * } finally {
 *   cache.close();
 * }
 * ```
 */
export class RegistryCache implements RemoteCache {
  /** host[:port]/repository, for messages. */
  readonly where: string;
  /** Only read from it. */
  readonly readOnly: boolean;
  /** What it did: outputs handed over, keys not found, outputs stored, damaged records or blobs found. */
  readonly counts = { hits: 0, misses: 0, stored: 0, bad: 0 };
  private readonly client: RegistryClient;
  private readonly repository: string;

  /** `url` is registry://host[:port]/repository (the scheme may be left out). */
  constructor(url: string, options: CacheOptions = {}) {
    const { registry, repository } = parseCacheUrl(url);
    this.repository = repository;
    this.where = `${registry}/${repository}`;
    this.readOnly = Boolean(options.readOnly);
    this.client = new RegistryClient(registry, [`repository:${repository}:${this.readOnly ? "pull" : "pull,push"}`], { insecure: options.insecure });
  }

  /** Close its connections (a process with an open cache would wait for them). */
  close(): void {
    this.client.close();
  }

  /** {@inheritDoc RemoteCache.candidates} */
  async candidates(identity: string): Promise<Candidate[]> {
    const found = await this.#artifact(`k-${identity}`, CACHE_MEDIA.candidates);
    if (!found) return [];
    const list = (found.config as { candidates?: unknown }).candidates;
    if (!Array.isArray(list)) return [];
    return list.filter((c): c is Candidate =>
      typeof c === "object" && c !== null && typeof c.key === "string" && /^[0-9a-f]{64}$/.test(c.key) && Array.isArray(c.deps) &&
      c.deps.every((d: unknown) => typeof d === "object" && d !== null && (typeof (d as { target?: unknown }).target === "string" || typeof (d as { file?: unknown }).file === "string"))
    );
  }

  /** {@inheritDoc RemoteCache.fetch} */
  async fetch(key: string, target: string, out: string, upstream: Upstream[] = []): Promise<Fetched | undefined> {
    const found = await this.#artifact(`i-${key}`, CACHE_MEDIA.output);
    if (!found) {
      this.counts.misses++;
      return undefined;
    }
    const record = found.config as unknown as OutputRecord;
    if (record.v !== 1 || typeof record.stamp !== "string" || !["file", "dir", "symlink", "none"].includes(record.output)) throw this.#bad(target, "its record is not one crecipe wrote");
    const blob = found.manifest.layers?.[0];
    let trustedHash: string | undefined;
    if (record.output === "symlink") {
      if (typeof record.link !== "string") throw this.#bad(target, "its record has no link target");
      fs.symlinkSync(record.link, out);
    } else if (record.output === "file") {
      if (!blob) throw this.#bad(target, "its output blob is missing from the record");
      const digest = await this.#download(blob.digest, target, (res) => streamTo(res, fs.createWriteStream(out, { mode: 0o600 })));
      fs.chmodSync(out, typeof record.mode === "number" ? record.mode & 0o7777 : 0o644);
      if (record.outHash === digest) trustedHash = digest; // the blob's verified digest is the file's hash
    } else if (record.output === "dir") {
      if (!blob) throw this.#bad(target, "its output blob is missing from the record");
      fs.mkdirSync(out);
      await this.#download(blob.digest, target, (res) => untarFrom(res, out));
      const linked = new Set<string>();
      for (const ref of record.refs ?? []) {
        const from = upstream.find((u) => u.target === ref.target && u.sha256 === ref.sha256);
        if (!from || ref.path.split("/").includes("..") || path.isAbsolute(ref.path)) throw this.#bad(target, `it names ${ref.target}'s output, which is not here as it was`);
        const to = path.join(out, ref.path);
        if (fs.lstatSync(path.dirname(to), { throwIfNoEntry: false })?.isDirectory() !== true) throw this.#bad(target, `it names a place for ${ref.target}'s output that is not a directory`);
        linkOrCopy(from.path, to);
        linked.add(path.resolve(to));
      }
      // A hash its builder gave (an image's manifest digest, a layer set's digests) cannot be
      // computed again here: such an output is a layout of blobs named by their digests,
      // each checked; a tree's hash is its manifest's, which the commit computes again.
      if (record.outHash && /^[a-z]+:/.test(record.outHash) && !record.outHash.startsWith("tree:")) {
        const manifest = record.outHash.startsWith("image:") ? record.outHash.slice("image:".length) : undefined;
        verifyBlobs(out, manifest, linked, (why) => this.#bad(target, why));
        trustedHash = record.outHash;
      }
    }
    this.counts.hits++;
    return { value: record.value, stamp: record.stamp, ...(trustedHash ? { trustedHash } : {}) };
  }

  /** {@inheritDoc RemoteCache.store} */
  async store(entry: StoreEntry): Promise<void> {
    const { repository } = this;
    const record: OutputRecord = { v: 1, target: entry.target, output: entry.output, stamp: entry.stamp, value: entry.value, outHash: entry.outHash };
    const layers: { mediaType: string; digest: string; size: number }[] = [];
    if (entry.output === "symlink") record.link = fs.readlinkSync(entry.path);
    else if (entry.output === "file") {
      const st = fs.statSync(entry.path);
      const size = st.size;
      record.mode = st.mode & 0o7777;
      // A file output's hash is its sha256 (the registry checks it again as it takes the bytes).
      const digest = `sha256:${entry.outHash && /^[0-9a-f]{64}$/.test(entry.outHash) ? entry.outHash : hashFile(entry.path, undefined, false)}`;
      await this.client.putBlob(repository, digest, { file: entry.path, size });
      layers.push({ mediaType: CACHE_MEDIA.file, digest, size });
    } else if (entry.output === "dir") {
      // Files that are upstream outputs (an image's blobs are its layers, hard-linked) go as references.
      const byInode = new Map(entry.upstream.flatMap((u) => {
        const st = fs.statSync(u.path, { throwIfNoEntry: false });
        return st ? [[`${st.dev}:${st.ino}`, u] as const] : [];
      }));
      const refs: NonNullable<OutputRecord["refs"]> = [];
      if (byInode.size) {
        walkSorted(entry.path, (rel, _full, st) => {
          const u = st.isFile() ? byInode.get(`${st.dev}:${st.ino}`) : undefined;
          if (u) refs.push({ path: rel.toString(), target: u.target, sha256: u.sha256 });
        });
      }
      if (refs.length) record.refs = refs;
      const archive = path.join(entry.tmp, "output.tar");
      const { digest, size } = await tarOf(entry.path, archive, refs.map((r) => r.path));
      await this.client.putBlob(repository, digest, { file: archive, size });
      layers.push({ mediaType: CACHE_MEDIA.tree, digest, size });
    }
    // The manifest last: until it is there, nothing points at the blobs.
    await this.#putArtifact(`i-${entry.key}`, CACHE_MEDIA.output, record, layers, entry.target);
    // Then the identity's dependency lists, this one first. Two machines storing at once
    // may each drop the other's newest list: a later miss, never a wrong output.
    const known = await this.candidates(entry.identity).catch(() => []);
    const candidates = [{ deps: entry.deps, key: entry.key }, ...known.filter((c) => c.key !== entry.key)].slice(0, KEEP);
    await this.#putArtifact(`k-${entry.identity}`, CACHE_MEDIA.candidates, { v: 1, target: entry.target, candidates }, [], entry.target);
    this.counts.stored++;
  }

  /** The manifest tagged `tag` and its config blob (JSON, verified), or undefined when there is none. */
  async #artifact(tag: string, configType: string): Promise<{ manifest: ArtifactManifest; config: Record<string, unknown> } | undefined> {
    const got = await this.client.getManifest(this.repository, tag, [MEDIA.manifest]);
    if (!got) return undefined;
    let manifest: ArtifactManifest;
    try {
      manifest = JSON.parse(got.bytes.toString("utf8"));
    } catch {
      return undefined;
    }
    if (manifest.config?.mediaType !== configType || !/^sha256:[0-9a-f]{64}$/.test(manifest.config.digest ?? "")) return undefined;
    const answer = await this.client.request("GET", `/v2/${this.repository}/blobs/${manifest.config.digest}`);
    if (answer.status === 404) return answer.res.resume(), undefined;
    if (answer.status !== 200) throw await this.client.failure(`reading ${tag}'s record`, answer);
    const bytes = await bodyOf(answer.res);
    if (`sha256:${sha256Hex(bytes)}` !== manifest.config.digest) {
      this.counts.bad++;
      throw new CrecipeError(`${tag}'s record does not match its digest`);
    }
    try {
      return { manifest, config: JSON.parse(bytes.toString("utf8")) };
    } catch {
      return undefined;
    }
  }

  async #putArtifact(tag: string, configType: string, config: unknown, layers: ArtifactManifest["layers"], target: string): Promise<void> {
    const bytes = Buffer.from(JSON.stringify(config));
    const digest = `sha256:${sha256Hex(bytes)}`;
    await this.client.putBlob(this.repository, digest, bytes);
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      artifactType: CACHE_MEDIA.artifact,
      config: { mediaType: configType, digest, size: bytes.length },
      layers,
      annotations: { "org.crecipe.target": target },
    };
    await this.client.putManifest(this.repository, tag, Buffer.from(JSON.stringify(manifest)), MEDIA.manifest);
  }

  /** Stream blob `digest` into `into`, checking its digest on the way; its digest. */
  async #download(digest: string, target: string, into: (res: NodeJS.ReadableStream) => Promise<void>): Promise<string> {
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw this.#bad(target, `its blob digest ${JSON.stringify(digest)} is not a sha256`);
    const answer = await this.client.request("GET", `/v2/${this.repository}/blobs/${digest}`);
    if (answer.status === 404) {
      answer.res.resume();
      throw this.#bad(target, `its blob ${digest.slice(0, 19)}… is missing`);
    }
    if (answer.status !== 200) throw await this.client.failure(`reading the blob of ${target}`, answer);
    const hash = createHash("sha256");
    answer.res.on("data", (data: Buffer) => {
      hash.update(data);
      this.client.stats.downloadedBytes += data.length;
    });
    await into(answer.res);
    const got = `sha256:${hash.digest("hex")}`;
    if (got !== digest) throw this.#bad(target, `its blob is damaged (${got.slice(0, 19)}…, not ${digest.slice(0, 19)}…)`);
    return got.slice("sha256:".length);
  }

  #bad(target: string, why: string): CrecipeError {
    this.counts.bad++;
    return new CrecipeError(`the cache's copy of ${target} cannot be used: ${why}`, { target });
  }
}

interface ArtifactManifest {
  config?: { mediaType?: string; digest?: string; size?: number };
  layers?: { mediaType: string; digest: string; size: number }[];
}

/** Pipe `from` into a file stream; resolves when it is written and closed. */
function streamTo(from: NodeJS.ReadableStream, to: fs.WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    from.on("error", reject);
    from.on("aborted", () => reject(new Error("the registry closed the connection in the middle of the blob")));
    to.on("error", reject);
    to.on("close", resolve);
    from.pipe(to);
  });
}

/**
 * GNU tar of a directory output, as it is on disk (numeric owners, modes, hard links,
 * whiteouts), in name order with no times, so one tree gives one archive. Written to
 * `archive` and hashed on the way: its digest (sha256:…) and size.
 */
async function tarOf(dir: string, archive: string, leaveOut: string[]): Promise<{ digest: string; size: number }> {
  const exclude = leaveOut.map((p) => `--exclude=./${p}`); // literal names (--no-wildcards), whole paths (--anchored)
  const out = new OutputFile(archive);
  try {
    await run("tar", ["--create", "--file=-", `--directory=${dir}`, "--sort=name", "--numeric-owner", "--mtime=@0", "--format=posix", "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime", "--anchored", "--no-wildcards", ...exclude, "."], undefined, (data) => out.write(data));
  } catch (error) {
    out.abandon();
    throw error;
  }
  return { digest: `sha256:${out.close()}`, size: out.size };
}

/** Unpack a stream made by tarOf into `dir` (owners kept where the user may set them). */
function untarFrom(from: NodeJS.ReadableStream, dir: string): Promise<void> {
  const owners = process.getuid?.() === 0 ? ["--same-owner"] : ["--no-same-owner"];
  return run("tar", ["--extract", "--file=-", `--directory=${dir}`, "--numeric-owner", "--same-permissions", ...owners], from);
}

/** Run `tool`, feeding it `stdin` when given and handing its output to `stdout` when given; rejects on a failure, with its stderr's tail. */
function run(tool: string, args: string[], stdin?: NodeJS.ReadableStream, stdout?: (data: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(tool, args, { stdio: [stdin ? "pipe" : "ignore", stdout ? "pipe" : "ignore", "pipe"] });
    if (stdout) child.stdout!.on("data", stdout);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    if (stdin) {
      child.stdin!.on("error", () => {}); // the exit code tells
      stdin.on("error", (error) => {
        child.kill();
        reject(error);
      });
      stdin.on("aborted", () => {
        child.kill();
        reject(new Error("the registry closed the connection in the middle of the blob"));
      });
      stdin.pipe(child.stdin!);
    }
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${tool} ${args[0]} exited with ${code}: ${stderr.trim().split("\n").slice(-3).join("; ")}`))));
  });
}

/**
 * A directory of blobs as image() (or packageLayers(), attach()) writes it: every blob
 * hashes to its name (those linked from upstream outputs are theirs already), and for an
 * image, index.json names the manifest `digest`.
 */
function verifyBlobs(dir: string, digest: string | undefined, linked: Set<string>, bad: (why: string) => Error): void {
  if (digest !== undefined) {
    let index: { manifests?: { digest?: string }[] };
    try {
      index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));
    } catch {
      throw bad("its image has no readable index.json");
    }
    if (index.manifests?.[0]?.digest !== `sha256:${digest}`) throw bad("its image's index names another manifest");
  }
  const blobs = path.join(dir, "blobs", "sha256");
  if (!fs.existsSync(blobs)) throw bad("its output's hash was given by its builder, and it has no blobs to check");
  for (const name of fs.readdirSync(blobs)) {
    const file = path.join(blobs, name);
    if (linked.has(path.resolve(file))) continue; // an upstream output whose stamp the key checked
    if (hashFile(file, undefined, false) !== name) throw bad(`its image's blob ${name.slice(0, 12)}… is damaged`);
  }
}
