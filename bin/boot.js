// Loads TypeScript recipes (and crecipe's own TypeScript) without a loader thread.
//
// Each .ts module is transformed once by esbuild into a cache file that mirrors its
// absolute path (<cache>/ts/<path>.mjs); its .ts imports are rewritten to their cached
// twins and bare imports to the absolute file they resolve to. A cache file starts with
// the sha256 of its source and the list of what it imports, so a warm start reads and
// hashes the sources and never loads esbuild. A changed or missing source is transformed
// again: a cached module never goes stale, and a missing import fails loudly.
//
// crecipe's own code (lib/ and the CLI) is loaded as one bundle instead, built by esbuild
// once per content of its sources and kept in <cache>/bundle/: one module to load instead
// of forty is most of a no-op's start-up. Recipes that import lib/mod.ts get the bundle's
// copy, so the CLI and the recipe share one registry of targets.
//
// Plain JavaScript on purpose: it runs before anything can load TypeScript. Node and Deno
// both use it, so a builder's text (`fn.toString()`) is the same under both runtimes.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as nodeFs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { analyze, SourceIndex, sourceLines } from "./sources.js";

// The loader's own text (and its analysis's) is part of every cache key: a changed
// loader re-transforms all.
const LOADER_VERSION = createHash("sha256")
  .update(nodeFs.readFileSync(fileURLToPath(import.meta.url)))
  .update(nodeFs.readFileSync(fileURLToPath(new URL("./sources.js", import.meta.url))))
  .digest("hex");
const TS_EXTENSIONS = /\.(ts|mts|tsx)$/;

/** The cache root: $CRECIPE_CACHE, else $XDG_CACHE_HOME/crecipe, else ~/.cache/crecipe. */
export function cacheRoot() {
  if (process.env.CRECIPE_CACHE) return path.resolve(process.env.CRECIPE_CACHE);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "crecipe");
}

const tsRoot = () => path.join(cacheRoot(), "ts");

/** The cached twin of a source file. */
function cachedPath(source) {
  return path.join(tsRoot(), source + ".mjs");
}

/** The source file that a cache file (or its URL) stands for, or the input unchanged. */
export function originalPath(fileOrUrl) {
  const file = fileOrUrl.startsWith("file:") ? fileURLToPath(fileOrUrl) : fileOrUrl;
  const root = tsRoot() + path.sep;
  if (file.startsWith(root) && file.endsWith(".mjs")) return file.slice(root.length - 1, -4);
  return file;
}

let esbuild;
async function transform(source, text) {
  const url = pathToFileURL(source).href;
  const options = {
    loader: source.endsWith(".tsx") ? "tsx" : "ts",
    format: "esm",
    target: "es2022",
    sourcefile: source,
    sourcemap: "inline",
    sourcesContent: false,
    define: {
      "import.meta.url": JSON.stringify(url),
      "import.meta.filename": JSON.stringify(source),
      "import.meta.dirname": JSON.stringify(path.dirname(source)),
      "import.meta.main": "false",
    },
  };
  // esbuild's command, where it is found and succeeds; else its API, which also says
  // precisely what is wrong with a source that does not compile.
  let code = await transformByCommand(text, options);
  if (code === undefined) {
    // require, not import: esbuild is CommonJS, and import() would parse it twice (~15 ms).
    esbuild ??= createRequire(import.meta.url)(resolveBare("esbuild", fileURLToPath(import.meta.url)));
    code = (await esbuild.transform(text, options)).code;
  }
  // The cache file starts with a header line (prepareOne): the map must skip it, or every
  // line a stack trace names in a recipe is off by one.
  return skipLines(code, 1);
}

/**
 * esbuild's transform by its command: the same binary and output as its API, without
 * loading the API's JavaScript (~17 ms) and starting its service (~40 ms together,
 * against ~40 ms for the command). Undefined where the binary is not found, does not
 * start, or the source does not compile (the API then says why).
 */
function transformByCommand(text, options) {
  const binary = esbuildBinary();
  if (!binary) return undefined;
  const args = [
    `--loader=${options.loader}`, `--format=${options.format}`, `--target=${options.target}`,
    `--sourcefile=${options.sourcefile}`, `--sourcemap=${options.sourcemap}`, "--sources-content=false", "--log-level=silent",
    ...Object.entries(options.define).map(([key, value]) => `--define:${key}=${value}`),
  ];
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(binary, args, { stdio: ["pipe", "pipe", "ignore"] });
    } catch {
      return resolve(undefined);
    }
    const chunks = [];
    child.stdout.on("data", (chunk) => chunks.push(chunk));
    child.on("error", () => resolve(undefined));
    child.on("close", (code) => resolve(code === 0 ? Buffer.concat(chunks).toString("utf8") : undefined));
    child.stdin.on("error", () => {}); // a binary that died at once: "close" says so
    child.stdin.end(text);
  });
}

let binaryFound;
/** The esbuild binary its API would run ($ESBUILD_BINARY_PATH, or its platform's package), if there is one. */
function esbuildBinary() {
  if (binaryFound !== undefined) return binaryFound;
  binaryFound = null;
  if (process.env.ESBUILD_BINARY_PATH) return (binaryFound = process.env.ESBUILD_BINARY_PATH);
  if (process.platform === "win32") return null;
  try {
    const api = resolveBare("esbuild", fileURLToPath(import.meta.url));
    binaryFound = resolveBare(`@esbuild/${process.platform}-${os.arch()}/bin/esbuild`, api);
  } catch { /* the API finds its own, or says why not */ }
  return binaryFound;
}

/** Shift an inline source map down by `lines` generated lines. */
function skipLines(code, lines) {
  const prefix = "//# sourceMappingURL=data:application/json;base64,";
  const at = code.lastIndexOf(prefix);
  if (at < 0) return code;
  const map = JSON.parse(Buffer.from(code.slice(at + prefix.length).trim(), "base64").toString("utf8"));
  map.mappings = ";".repeat(lines) + map.mappings;
  return code.slice(0, at) + prefix + Buffer.from(JSON.stringify(map)).toString("base64") + "\n";
}

/** esbuild's complaint about a source file, as one LoadError a person can read. */
async function transformOrExplain(source, text) {
  try {
    return await transform(source, text);
  } catch (error) {
    const first = error.errors?.[0];
    const where = first?.location ? `${source}:${first.location.line}:${first.location.column + 1}` : source;
    throw new LoadError(`cannot compile ${where}: ${first?.text ?? error.message}`);
  }
}

// esbuild prints every static import/export as `… from "spec"` or `import "spec"`, and a
// dynamic one as `import("spec")`, always with double quotes.
const IMPORT_RE = /(^|\n)((?:import|export)\b[^"'`;]*?\bfrom\s*|import\s*)"([^"\\\n]+)"|\bimport\("([^"\\\n]+)"\)/g;

class LoadError extends Error {
  name = "LoadError";
}

/**
 * Make sure `source` and every module it imports are transformed and fresh.
 * Returns the file URL to import.
 */
export async function prepare(source) {
  source = nodeFs.realpathSync(source);
  const started = early?.source === source ? early.work : undefined;
  if (started) early = undefined;
  // A failure of the early start is this prepare's to find again and report.
  if (!(await started)) await prepareOne(source, new Map(), []);
  return pathToFileURL(cachedPath(source)).href;
}

let early;
/**
 * Start preparing `file` now, before the CLI has loaded: a recipe edited since its last
 * transform is then transformed by esbuild's process while this one loads the bundle
 * (that transform is most of a rebuild after a one-line edit). A prepare() of the same
 * file waits for it, and does it again only where it failed, to report why.
 */
export function prepareEarly(file) {
  if (!TS_EXTENSIONS.test(file)) return;
  let source;
  try {
    source = nodeFs.realpathSync(file);
    if (!nodeFs.statSync(source).isFile()) return;
  } catch {
    return;
  }
  early = { source, work: prepareOne(source, new Map(), []).then(() => true, () => false) };
}

async function prepareOne(source, seen, chain) {
  if (seen.has(source)) return seen.get(source);
  const work = (async () => {
    let text;
    try {
      text = nodeFs.readFileSync(source, "utf8");
    } catch (error) {
      const from = chain.length ? ` (imported by ${chain[chain.length - 1]})` : "";
      throw new LoadError(`cannot read ${source}${from}: ${error.code ?? error.message}`);
    }
    const hash = createHash("sha256").update(LOADER_VERSION).update("\0").update(text).digest("hex");
    const target = cachedPath(source);
    const cached = readHeader(target);
    if (cached && cached.hash === hash && cached.sources && (!cached.bundle || cached.bundle === (await crecipeBundle()).mod)) {
      sourceIndex.add(source, cached.sources);
      await Promise.all(cached.ts.map((dep) => prepareOne(dep, seen, [...chain, source])));
      return;
    }
    const code = await transformOrExplain(source, text);
    const tsDeps = [];
    const rewritten = [];
    for (const match of code.matchAll(IMPORT_RE)) {
      const spec = match[3] ?? match[4];
      const resolved = resolveSpecifier(spec, source);
      if (!path.isAbsolute(resolved)) continue; // node: builtins stay as they are
      if (resolved === MOD_TS) {
        rewritten.push([match, (await crecipeBundle()).mod]);
      } else if (TS_EXTENSIONS.test(resolved)) {
        tsDeps.push(resolved);
        rewritten.push([match, pathToFileURL(cachedPath(resolved)).href]);
      } else {
        rewritten.push([match, pathToFileURL(resolved).href]);
      }
    }
    let out = "";
    let last = 0;
    for (const [match, url] of rewritten) {
      const spec = match[3] ?? match[4];
      const at = match.index + match[0].lastIndexOf(`"${spec}"`);
      out += code.slice(last, at) + JSON.stringify(url);
      last = at + spec.length + 2;
    }
    out += code.slice(last);
    const usesBundle = rewritten.some(([match]) => resolveSpecifier(match[3] ?? match[4], source) === MOD_TS);
    const sources = await analyzeModule(out);
    sourceIndex.add(source, sources);
    const header = `// ${JSON.stringify({ hash, source, ts: tsDeps, ...(usesBundle ? { bundle: (await crecipeBundle()).mod } : {}), sources })}\n`;
    writeAtomic(target, header + out);
    await Promise.all(tsDeps.map((dep) => prepareOne(dep, seen, [...chain, source])));
  })();
  seen.set(source, work);
  return work;
}

/**
 * Every module loaded through the cache, analysed for what its builders can depend on
 * (bin/sources.js): the CLI hands it to the engine, which adds to a target's identity the
 * top-level statements its builder reaches.
 */
export const sourceIndex = new SourceIndex();

/** The analysis of a module's cached code (its imports already rewritten to URLs). */
async function analyzeModule(code) {
  const tsUrl = pathToFileURL(tsRoot()).href + "/";
  const modUrl = (await crecipeBundle()).mod;
  const classify = (spec) => {
    if (spec === modUrl) return "crecipe";
    if (spec.startsWith(tsUrl)) return { file: originalPath(spec) };
    return null;
  };
  // The code's source map counts the header line the cache file starts with.
  return analyze(code, classify, sourceLines(code, 1));
}

function readHeader(file) {
  let fd;
  try {
    fd = nodeFs.openSync(file, "r");
  } catch {
    return undefined;
  }
  try {
    // The header is one line; its analysis makes it longer than a first read at times.
    let buffer = Buffer.alloc(16384);
    let length = 0;
    let end = -1;
    for (;;) {
      const n = nodeFs.readSync(fd, buffer, length, buffer.length - length, length);
      end = buffer.indexOf(10, length);
      length += n;
      if (end >= 0 || n === 0) break;
      if (length === buffer.length) buffer = Buffer.concat([buffer, Buffer.alloc(buffer.length)]);
    }
    if (end < 0 || end >= length) return undefined;
    const text = buffer.subarray(0, end).toString("utf8");
    if (!text.startsWith("// ")) return undefined;
    return JSON.parse(text.slice(3));
  } catch {
    return undefined;
  } finally {
    nodeFs.closeSync(fd);
  }
}

function writeAtomic(file, text) {
  nodeFs.mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  nodeFs.writeFileSync(temp, text);
  nodeFs.renameSync(temp, file);
}

/** Resolve an import specifier found in `importer` to an absolute path (or keep builtins). */
function resolveSpecifier(spec, importer) {
  if (spec.startsWith("node:") || spec.startsWith("data:")) return spec;
  if (spec.startsWith("npm:") || spec.startsWith("jsr:") || spec.startsWith("http")) {
    throw new LoadError(
      `${importer}: "${spec}" is a Deno-only specifier; use the bare name ("${spec.replace(/^npm:|@[^/]*$/g, "")}") so Node and Deno both load it`,
    );
  }
  if (spec.startsWith("file:")) return nodeFs.realpathSync(fileURLToPath(spec));
  if (spec.startsWith(".") || spec.startsWith("/")) {
    const file = path.resolve(path.dirname(importer), spec);
    try {
      return nodeFs.realpathSync(file);
    } catch {
      throw new LoadError(`${importer}: cannot find "${spec}" (looked for ${file})`);
    }
  }
  if (builtin(spec)) return spec;
  return resolveBare(spec, importer);
}

let builtins;
function builtin(spec) {
  builtins ??= new Set(createRequire(import.meta.url)("node:module").builtinModules);
  return builtins.has(spec);
}

/** Node's ESM resolution for a bare specifier: node_modules walk plus package "exports". */
export function resolveBare(spec, importer) {
  const parts = spec.split("/");
  const name = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  const subpath = "." + spec.slice(name.length);
  for (let dir = path.dirname(importer); ; dir = path.dirname(dir)) {
    const pkgDir = path.join(dir, "node_modules", name);
    const pkgJson = path.join(pkgDir, "package.json");
    if (nodeFs.existsSync(pkgJson)) {
      const pkg = JSON.parse(nodeFs.readFileSync(pkgJson, "utf8"));
      let target;
      if (pkg.exports !== undefined) {
        const exp = typeof pkg.exports === "string" || Array.isArray(pkg.exports) || !Object.keys(pkg.exports).some((k) => k.startsWith("."))
          ? { ".": pkg.exports }
          : pkg.exports;
        target = pickCondition(exp[subpath]);
        if (target === undefined) {
          throw new LoadError(`${importer}: package "${name}" does not export "${subpath}"`);
        }
      } else if (subpath === ".") {
        target = pkg.module ?? pkg.main ?? "index.js";
      } else {
        target = subpath;
      }
      return nodeFs.realpathSync(path.resolve(pkgDir, target));
    }
    if (dir === path.dirname(dir)) break;
  }
  throw new LoadError(`${importer}: cannot find package "${name}"; run npm install`);
}

function pickCondition(value) {
  if (typeof value === "string" || value === null || value === undefined) return value ?? undefined;
  if (Array.isArray(value)) return pickCondition(value[0]);
  // The same conditions under Node and Deno, so the shared cache resolves alike for both.
  for (const condition of ["node", "import", "default"]) {
    if (condition in value) {
      const picked = pickCondition(value[condition]);
      if (picked !== undefined) return picked;
    }
  }
  return undefined;
}

/** Import a TypeScript (or JavaScript) module through the cache. */
export async function importTs(file) {
  const abs = path.resolve(file);
  if (abs === CLI_TS) return import((await crecipeBundle()).cli);
  if (abs === VERBS_TS) return import((await crecipeBundle()).verbs);
  if (abs === MOD_TS) return import((await crecipeBundle()).mod);
  if (!TS_EXTENSIONS.test(file)) return import(pathToFileURL(abs).href);
  return import(await prepare(abs));
}

const REPO = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const MOD_TS = path.join(REPO, "lib", "mod.ts");
const CLI_TS = path.join(REPO, "bin", "cli.ts");
const VERBS_TS = path.join(REPO, "bin", "verbs.ts");

let bundle;
/**
 * The bundle of lib/mod.ts, bin/cli.ts and bin/verbs.ts (esbuild, code splitting: chunks
 * they share, so all see one copy of the engine, and the verbs load only what they use).
 * Fresh when every source it was built from has the same stat, or else the same content;
 * rebuilt otherwise.
 */
function crecipeBundle() {
  return (bundle ??= (async () => {
    // One bundle directory per checkout: two checkouts of crecipe do not evict each other.
    const root = path.join(cacheRoot(), "bundle", createHash("sha256").update(REPO).digest("hex").slice(0, 12));
    const stateFile = path.join(root, "state.json");
    let state;
    try {
      state = JSON.parse(nodeFs.readFileSync(stateFile, "utf8"));
    } catch { /* none yet */ }
    if (state?.loader === LOADER_VERSION && nodeFs.existsSync(path.join(state.dir, "bin", "verbs.mjs"))) {
      let fresh = true;
      let touched = false;
      for (const [file, seen] of Object.entries(state.inputs)) {
        const st = nodeFs.statSync(file, { throwIfNoEntry: false });
        if (st && st.size === seen.size && st.mtimeMs === seen.mtimeMs && st.ino === seen.ino) continue;
        const hash = st && createHash("sha256").update(nodeFs.readFileSync(file)).digest("hex");
        if (hash !== seen.hash) {
          fresh = false;
          break;
        }
        Object.assign(seen, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
        touched = true;
      }
      if (fresh) {
        if (touched) writeAtomic(stateFile, JSON.stringify(state));
        return urls(state.dir);
      }
    }
    // require, not import: esbuild is CommonJS, and import() would parse it twice (~15 ms).
    esbuild ??= createRequire(import.meta.url)(resolveBare("esbuild", fileURLToPath(import.meta.url)));
    const temp = path.join(root, `tmp.${process.pid}.${Math.random().toString(36).slice(2)}`);
    let result;
    try {
      result = await esbuild.build({
        entryPoints: [MOD_TS, CLI_TS, VERBS_TS],
        outbase: REPO,
        outdir: temp,
        bundle: true,
        splitting: true,
        format: "esm",
        // .mjs: Node knows an ES module by its name, instead of reading it twice to guess
        // (a .js file outside a package of "type": "module": ~20 ms of every start).
        outExtension: { ".js": ".mjs" },
        platform: "node",
        target: "es2022",
        metafile: true,
        logLevel: "silent",
        plugins: [bundlePlugin()],
      });
    } catch (error) {
      nodeFs.rmSync(temp, { recursive: true, force: true });
      const first = error.errors?.[0];
      const where = first?.location ? `${first.location.file}:${first.location.line}:${first.location.column + 1}` : "crecipe's sources";
      throw new LoadError(`cannot compile ${where}: ${first?.text ?? error.message}`);
    }
    const inputs = {};
    let key = createHash("sha256").update(LOADER_VERSION);
    for (const input of Object.keys(result.metafile.inputs).sort()) {
      const file = path.resolve(input);
      const st = nodeFs.statSync(file);
      const hash = createHash("sha256").update(nodeFs.readFileSync(file)).digest("hex");
      inputs[file] = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hash };
      key = key.update(`${file}\0${hash}\n`);
    }
    const dir = path.join(root, key.digest("hex").slice(0, 24));
    try {
      nodeFs.renameSync(temp, dir);
    } catch {
      nodeFs.rmSync(temp, { recursive: true, force: true }); // another process made the same bundle
    }
    writeAtomic(stateFile, JSON.stringify({ loader: LOADER_VERSION, dir, inputs }));
    sweepBundles(root, dir);
    return urls(dir);
  })());
}

/** Bundles of older sources, unused for an hour (a process still running one keeps it meanwhile). */
function sweepBundles(root, keep) {
  for (const name of nodeFs.readdirSync(root)) {
    const dir = path.join(root, name);
    if (dir === keep || !/^[0-9a-f]{24}$|^tmp\./.test(name)) continue;
    const st = nodeFs.statSync(dir, { throwIfNoEntry: false });
    if (st && Date.now() - st.mtimeMs > 3600_000) nodeFs.rmSync(dir, { recursive: true, force: true });
  }
}

function urls(dir) {
  const url = (...parts) => pathToFileURL(path.join(dir, ...parts)).href;
  return { mod: url("lib", "mod.mjs"), cli: url("bin", "cli.mjs"), verbs: url("bin", "verbs.mjs") };
}

/**
 * Bare imports resolve from the repository (the bundle lives in the cache), and each
 * source's import.meta.url stays its own: lib/ finds its files (rdinit.c) by it.
 */
function bundlePlugin() {
  return {
    name: "crecipe-bundle",
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.path.startsWith("node:") || builtin(args.path)) return { path: args.path, external: true };
        return { path: pathToFileURL(resolveBare(args.path, args.importer)).href, external: true };
      });
      build.onLoad({ filter: /\.ts$/ }, (args) => {
        const text = nodeFs.readFileSync(args.path, "utf8");
        return { contents: text.replaceAll("import.meta.url", JSON.stringify(pathToFileURL(args.path).href)), loader: "ts" };
      });
    },
  };
}

export { LoadError };
