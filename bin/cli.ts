/**
 * crecipe [options] RECIPE.ts [TARGET…] — argv (minimist) to build(). Nothing a script
 * cannot do lives here.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import minimist from "minimist";
import { build, CrecipeError, type Node } from "../lib/mod.ts";
import { formatFailure } from "../lib/engine/report.ts";
import { BuildError, CycleError, InterruptedError } from "../lib/engine/errors.ts";
import { clean, describeGraph, explain, listTargets, resolveTargets } from "../lib/engine/inspect.ts";
import { runVerb, VERBS } from "./verbs.ts";

const VERSION = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;

/** Exit codes, also in the README. */
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
      --clean       remove outputs, keeping precious ones (downloads, installs)
      --xclean      remove the whole out dir
  -v, --verbose     show the commands run
  -q, --quiet       print only failures
      --version     print the version
  -h, --help        this help

exit codes: 0 ok, 1 a target failed, 2 bad usage or recipe error, 130 interrupted`;

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
  verbose?: boolean;
  quiet?: boolean;
  version?: boolean;
  help?: boolean;
}

export async function main(argv: string[], importTs: (file: string) => Promise<Record<string, unknown>>): Promise<number> {
  if (VERBS.includes(argv[0])) return await runVerb(argv);
  const args: Args = minimist(argv, {
    string: ["jobs", "out", "why", "graph"],
    boolean: ["dry-run", "check", "list", "clean", "xclean", "verbose", "quiet", "version", "help"],
    alias: { j: "jobs", o: "out", n: "dry-run", v: "verbose", q: "quiet", h: "help" },
    unknown: (a: string) => {
      if (a.startsWith("-")) throw new CrecipeError(`unknown option ${a}`, { fix: "see crecipe --help" });
      return true;
    },
  });
  if (args.help) return console.log(HELP), EXIT.ok;
  if (args.version) return console.log(VERSION), EXIT.ok;
  const outDir = args.out ?? "out";
  if (args.xclean) {
    fs.rmSync(outDir, { recursive: true, force: true });
    console.error(`crecipe: removed ${outDir}/`);
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
  const module = await importTs(path.resolve(recipe));
  if (args.clean) return clean(outDir), EXIT.ok;
  const targets: Node[] = resolveTargets(module, names, recipe);
  if (args.list) return process.stdout.write(await listTargets(outDir)), EXIT.ok;
  if (args.graph !== undefined) return process.stdout.write(describeGraph(outDir, targets, args.graph === "dot" ? "dot" : "text")), EXIT.ok;
  if (args.why !== undefined) {
    const [node] = resolveTargets(module, [args.why], recipe);
    return process.stdout.write(await explain(outDir, [node], true)), EXIT.ok;
  }
  if (args["dry-run"]) return process.stdout.write(await explain(outDir, targets, false)), EXIT.ok;
  await build(targets, { outDir, jobs, verbose: args.verbose, quiet: args.quiet, check: args.check, handleSignals: true });
  return EXIT.ok;
}

/** Run main and turn errors into one readable block and an exit code. */
export async function run(argv: string[], importTs: (file: string) => Promise<Record<string, unknown>>): Promise<number> {
  try {
    return await main(argv, importTs);
  } catch (error) {
    if (error instanceof BuildError) return console.error(formatFailure(error)), EXIT.failed;
    if (error instanceof InterruptedError) return EXIT.interrupted;
    if (error instanceof CycleError || error instanceof CrecipeError) {
      console.error(`crecipe: error: ${error.message}${error.fix ? `\n  fix: ${error.fix}` : ""}`);
      return error instanceof CycleError ? EXIT.failed : EXIT.usage;
    }
    if ((error as Error)?.name === "LoadError") return console.error(`crecipe: error: ${(error as Error).message}`), EXIT.usage;
    console.error(error);
    return EXIT.failed;
  }
}
