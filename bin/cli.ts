/**
 * crecipe [options] RECIPE.ts [TARGET…] — argv (minimist) to build(). Nothing a script
 * cannot do lives here.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import minimist from "minimist";
import { OPTIONS } from "./options.js";
import { build, CrecipeError, type ImageValue, type Node, push, type PushValue, RegistryCache, type Result } from "../lib/mod.ts";
import {
  BuildError,
  buildsStarted,
  clean,
  CycleError,
  describeGraph,
  explain,
  fanOut,
  formatError,
  InterruptedError,
  jsonLines,
  layout,
  listTargets,
  OutDirError,
  outDirFailure,
  resolveTargets,
  type SourceIndex,
  thrownAt,
  TraceRecorder,
  writeTrace,
  useSourceIndex,
} from "../lib/inspect.ts";
import { runVerb, VERBS } from "./verbs.ts";

const VERSION = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;

/** Exit codes, also in the README; a signal N stops a build with 128 + N (130 for Ctrl-C). */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

const HELP = `crecipe ${VERSION} — build container filesystems, layers, images and initrds from recipes

usage: crecipe [options] RECIPE.ts [TARGET…]
       crecipe serve [DIR]                   serve an out dir over HTTP (--help for more)
       crecipe fetch URL -o FILE --seed OLD  download by the chunks OLD lacks (--help for more)

Builds the recipe's default export (a target or an array of targets), or the named
targets (export names or target names). Outputs go to out/ (see -o).

options:
  -j, --jobs N      build N targets at once (default: number of CPUs)
  -o, --out DIR     out dir (default: out)
  -n, --dry-run     print what would rebuild, and why; build nothing
      --check       compare every tree output with its manifest (finds edits deep
                    inside out/NAME/; a no-op only looks at each tree's top)
      --why TARGET  print why TARGET is or would be rebuilt
      --list        list the recipe's targets with their state
      --graph[=dot] print the dependency graph (text, or Graphviz dot)
      --json=FILE   write the run's events, one JSON object per line (fd:N: to
                    that file descriptor); see the README's Observability
      --trace=FILE  write a Chrome trace of the run (open it in ui.perfetto.dev)
      --clean       remove outputs, keeping precious ones (downloads, installs)
      --xclean      remove the whole out dir
      --push REF    push the one image named (or the default export) to a
                    registry, REF = host[:port]/repo:tag; prints the digest
      --insecure    plain http to the registry (loopback registries always are)
      --cache URL   a shared build cache in a registry, URL = registry://host[:port]/repo
                    (or $CRECIPE_SHARED_CACHE): targets built elsewhere with the same inputs
                    are taken from it, what is built here is stored in it
      --cache-read-only  take from the cache, never store in it ($CRECIPE_SHARED_CACHE_READ_ONLY=1)
  -v, --verbose     show the commands run
  -q, --quiet       print only failures
      --version     print the version
  -h, --help        this help

exit codes: 0 ok, 1 a target failed (or a cycle, or the out dir cannot be written),
2 bad usage or a recipe error, 128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM)`;

/** What minimist gives back for our options. */
interface Args {
  _: (string | number)[];
  jobs?: string;
  out?: string;
  why?: string;
  graph?: string;
  "dry-run"?: boolean;
  check?: boolean;
  list?: boolean;
  clean?: boolean;
  xclean?: boolean;
  json?: string;
  trace?: string;
  verbose?: boolean;
  quiet?: boolean;
  version?: boolean;
  help?: boolean;
  push?: string;
  insecure?: boolean;
  cache?: string;
  "cache-read-only"?: boolean;
}

type ImportTs = (file: string) => Promise<Record<string, unknown>>;

/** argv as minimist reads it; an unknown option is a usage error. */
export function parseArgs(argv: string[]): Args {
  return minimist(argv, {
    ...OPTIONS,
    unknown: (a: string) => {
      if (a.startsWith("-")) throw new CrecipeError(`unknown option ${a}`, { fix: "see crecipe --help" });
      return true;
    },
  });
}

export async function main(args: Args, importTs: ImportTs): Promise<number> {
  if (args.help) return console.log(HELP), EXIT.ok;
  if (args.version) return console.log(VERSION), EXIT.ok;
  if (args.out === "") throw new CrecipeError("-o wants a directory", { fix: "crecipe -o DIR RECIPE.ts (the default is out)" });
  const outDir = args.out ?? "out";
  if (args.xclean) {
    xclean(outDir);
    if (args._.length === 0) return EXIT.ok;
  }
  const [recipe, ...names] = args._.map(String);
  if (!recipe) {
    if (args.clean) return clean(outDir), EXIT.ok;
    console.error(HELP);
    return EXIT.usage;
  }
  const jobs = args.jobs === undefined ? undefined : Number(args.jobs);
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs > 0)) throw new CrecipeError(`-j wants a positive number, got ${args.jobs}`);
  const builds = buildsStarted();
  const module = await loadRecipe(recipe, importTs);
  if (args.clean) return clean(outDir), EXIT.ok;
  if (args.list) return process.stdout.write(await listTargets(outDir)), EXIT.ok;
  // A script that built what it wanted while it loaded (top-level `await build(…)`) is done.
  if (names.length === 0 && module.default === undefined && buildsStarted() > builds) return EXIT.ok;
  let targets: Node[] = resolveTargets(module, names, recipe);
  if (args.push !== undefined) {
    if (targets.length !== 1 || (targets[0].kind !== "image" && targets[0].kind !== "attached")) {
      throw new CrecipeError(`--push pushes one image; ${targets.length === 1 ? `${targets[0].name} is a ${targets[0].kind}` : `${targets.length} targets are named`}`, {
        fix: `crecipe ${recipe} IMAGE --push host:port/repo:tag`,
      });
    }
    targets = [push(targets[0] as Node<ImageValue>, args.push, { insecure: args.insecure })];
  }
  if (args.graph !== undefined) return process.stdout.write(describeGraph(outDir, targets, args.graph === "dot" ? "dot" : "text")), EXIT.ok;
  if (args.why !== undefined) {
    const [node] = resolveTargets(module, [args.why], recipe);
    return process.stdout.write(await explain(outDir, [node], true)), EXIT.ok;
  }
  if (args["dry-run"]) return process.stdout.write(await explain(outDir, targets, false)), EXIT.ok;
  if (args.json === "") throw new CrecipeError("--json wants a file or fd:N", { fix: "crecipe --json=events.ndjson RECIPE.ts, or --json=fd:3 3>&1" });
  if (args.trace === "") throw new CrecipeError("--trace wants a file", { fix: "crecipe --trace=trace.json RECIPE.ts, then open it in ui.perfetto.dev" });
  const cacheUrl = args.cache ?? (process.env.CRECIPE_SHARED_CACHE || undefined);
  if (cacheUrl === "") throw new CrecipeError("--cache wants a registry", { fix: "crecipe --cache registry://host:port/team/cache RECIPE.ts" });
  const readOnly = args["cache-read-only"] || /^(1|true|yes)$/i.test(process.env.CRECIPE_SHARED_CACHE_READ_ONLY ?? "");
  const cache = cacheUrl === undefined ? undefined : new RegistryCache(cacheUrl, { insecure: args.insecure, readOnly });
  const json = args.json === undefined ? undefined : jsonLines(args.json);
  const trace = args.trace === undefined ? undefined : new TraceRecorder();
  let results: Result[];
  try {
    results = await build(targets, { outDir, jobs, verbose: args.verbose, quiet: args.quiet, check: args.check, handleSignals: true, onEvent: fanOut([json?.sink, trace?.sink]), cache });
  } finally {
    cache?.close();
    json?.close();
    if (trace) writeTrace(args.trace!, trace);
  }
  if (args.push !== undefined) console.log(`${args.push}@${(results[0].value as PushValue).digest}`);
  return EXIT.ok;
}

/**
 * Import the recipe. Whatever goes wrong is a recipe error (exit 2) in one block: no such
 * file, a directory, a compile error, or an exception while its top level ran (with the
 * file and line it came from). A build the recipe ran itself keeps its own error.
 */
async function loadRecipe(recipe: string, importTs: ImportTs): Promise<Record<string, unknown>> {
  const st = fs.statSync(recipe, { throwIfNoEntry: false });
  if (!st) throw new CrecipeError(`no recipe ${recipe}: no such file`);
  if (st.isDirectory()) throw new CrecipeError(`${recipe} is a directory, not a recipe: name a .ts file`);
  try {
    return await importTs(path.resolve(recipe));
  } catch (error) {
    if (error instanceof BuildError || error instanceof CycleError || error instanceof InterruptedError || error instanceof OutDirError) throw error;
    const where = thrownAt(error);
    if (error instanceof CrecipeError) {
      if (where && !error.where && !error.message.includes(where)) error.where = where;
      throw error;
    }
    if ((error as Error)?.name === "LoadError") throw new CrecipeError((error as Error).message, { cause: error });
    const what = error instanceof Error ? `${error.name}: ${error.message}` : `it threw ${String(error)}`;
    throw new CrecipeError(`${recipe} failed while loading: ${what}`, {
      where,
      fix: `correct the recipe${where ? " there" : ""} (crecipe -v shows the whole stack)`,
      cause: error,
    });
  }
}

/** --xclean: remove the out dir, only if it is one (it has .crecipe/): never anything else. */
function xclean(outDir: string): void {
  const abs = path.resolve(outDir);
  if (!fs.existsSync(abs)) return void console.error(`crecipe: ${outDir}/ does not exist; nothing to remove`);
  if (!fs.statSync(path.join(abs, ".crecipe"), { throwIfNoEntry: false })?.isDirectory()) {
    throw new CrecipeError(`${outDir} is not a crecipe out dir (it has no .crecipe/); not removing it`, {
      fix: "give --xclean the out dir a build used (-o DIR), or remove it yourself",
    });
  }
  const cwd = process.cwd();
  if (cwd === abs || cwd.startsWith(abs + path.sep)) {
    throw new CrecipeError(`${outDir} holds the current directory; not removing it`, { fix: "run crecipe --xclean from outside it" });
  }
  fs.rmSync(abs, { recursive: true, force: true });
  console.error(`crecipe: removed ${outDir}/`);
}

/** Run main and turn errors into one readable block and an exit code (a stack only with -v). */
export async function run(argv: string[], importTs: ImportTs, sources?: SourceIndex): Promise<number> {
  let args: Args | undefined;
  // The loader's analysis of the recipe's sources: what builders read counts in their identity.
  useSourceIndex(sources);
  try {
    if (VERBS.includes(argv[0])) return await runVerb(argv);
    args = parseArgs(argv);
    return await main(args, importTs);
  } catch (caught) {
    // A file crecipe keeps in the out dir that cannot be written (--clean, --xclean, a lock).
    const error = outDirFailure(caught, layout(args?.out || "out")) ?? caught;
    if (error instanceof InterruptedError) return 128 + (os.constants.signals[error.signal as NodeJS.Signals] ?? 2);
    console.error(formatError(error, args?.verbose ?? argv.some((a) => a === "-v" || a === "--verbose")));
    return exitCode(error);
  }
}

/** The exit code of an error: see EXIT. */
function exitCode(error: unknown): number {
  if (error instanceof BuildError || error instanceof CycleError || error instanceof OutDirError) return EXIT.failed;
  if (error instanceof CrecipeError) return EXIT.usage; // a recipe error, bad usage
  return EXIT.failed; // a system error, or a bug in crecipe
}
