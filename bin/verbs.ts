/**
 * `crecipe serve DIR` and `crecipe fetch URL --seed OLD… -o NEW`: argv (minimist) to
 * serve() and fetchChunked(), a progress line on a terminal and one summary line.
 *
 * The command loads this module alone for them (bin/crecipe.js), not the CLI, and it
 * imports `crecipe/net` (lib/net.ts), not `crecipe`: a fetch starts without loading the
 * build engine (~30 ms of a ~0.45 s fetch here).
 */
import * as os from "node:os";
import * as path from "node:path";
import minimist from "minimist";
import { CrecipeError, fetchChunked, FetchError, type FetchProgress, formatBytes, formatError, InterruptedError, serve } from "../lib/net.ts";

export const VERBS = ["serve", "fetch"];

const SERVE_HELP = `usage: crecipe serve [DIR] [--port N] [--host ADDRESS] [-q]

Serves DIR (default out) over HTTP with byte ranges, for crecipe fetch, zsync and curl.
Listens on 127.0.0.1:8000 unless told otherwise (--port 0 picks a free port). One line
per request on stderr (-q: none). Ctrl-C stops it.`;

const FETCH_HELP = `usage: crecipe fetch URL -o FILE [--seed OLD]… [--json] [-q]

Downloads URL into FILE, reusing the chunks of the seed files (older versions of it):
only the chunks they lack are downloaded, by HTTP ranges. URL.chunks must sit beside
the file on the server (chunks(target) makes it). The whole file's sha256 is checked
against the index, and every chunk's, except those found in a seed where the new file
has them (checked by their CRC-32) or taken by the seed's own index (SEED.chunks, newer
than SEED): the whole file's hash checks those, and if it differs each is hashed and the
wrong ones downloaded. FILE is only written once all match. An interrupted fetch keeps FILE.part (+ .part.json, .part.chunks) and goes on
from there when run again.

options:
  -o, --out FILE    where the file goes (required)
  -s, --seed FILE   a file that may share chunks with it (repeat for more)
      --json        print the report as JSON on stdout
      --no-index    do not keep the index as FILE.chunks (kept by default: a
                    later fetch seeded with FILE then reads it instead of chunking FILE)
  -q, --quiet       no progress line (the summary line is always printed)

exit codes: 0 ok, 1 the fetch failed, 2 bad usage, 130 interrupted`;

/**
 * Run a verb and say how it ended, as the CLI does: its exit code (0; 1 failed; 2 bad
 * usage, a CrecipeError; 128 + N stopped by signal N), any error printed as one block.
 */
export async function runVerb(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    return verb === "serve" ? await serveVerb(rest) : await fetchVerb(rest);
  } catch (error) {
    if (error instanceof InterruptedError) return 128 + (os.constants.signals[error.signal as NodeJS.Signals] ?? 2);
    console.error(formatError(error, rest.some((a) => a === "-v" || a === "--verbose")));
    return error instanceof CrecipeError ? 2 : 1;
  }
}

/** What minimist gives back for the verbs' options. */
interface VerbArgs {
  _: (string | number)[];
  port?: string;
  host?: string;
  out?: string;
  seed?: string | string[];
  json?: boolean;
  index?: boolean;
  quiet?: boolean;
  help?: boolean;
}

function parse(argv: string[], spec: { string: string[]; boolean: string[]; alias: Record<string, string>; default?: Record<string, unknown> }): VerbArgs {
  return minimist(argv, {
    ...spec,
    unknown: (a: string) => {
      if (a.startsWith("-")) throw new CrecipeError(`unknown option ${a}`, { fix: "see crecipe serve --help / crecipe fetch --help" });
      return true;
    },
  });
}

async function serveVerb(argv: string[]): Promise<number> {
  const args = parse(argv, { string: ["port", "host"], boolean: ["quiet", "help"], alias: { p: "port", q: "quiet", h: "help" } });
  if (args.help) return console.log(SERVE_HELP), 0;
  if (args._.length > 1) throw new CrecipeError(`crecipe serve takes one directory, got ${args._.length}`, { fix: SERVE_HELP.split("\n")[0] });
  const port = args.port === undefined ? 8000 : Number(args.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CrecipeError(`--port wants a port number, got ${args.port}`);
  const dir = String(args._[0] ?? "out");
  const server = await serve(dir, { port, host: args.host, log: args.quiet ? undefined : (line) => console.error(line) });
  console.error(`crecipe: serving ${path.resolve(dir)} at ${server.url} (Ctrl-C stops)`);
  await new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => resolve());
  });
  await server.close();
  return 0;
}

async function fetchVerb(argv: string[]): Promise<number> {
  const args = parse(argv, { string: ["out", "seed"], boolean: ["json", "quiet", "help", "index"], default: { index: true }, alias: { o: "out", s: "seed", q: "quiet", h: "help" } });
  if (args.help) return console.log(FETCH_HELP), 0;
  const [url, ...extra] = args._.map(String);
  if (!url || extra.length) throw new CrecipeError(url ? `crecipe fetch takes one URL, got ${args._.length}` : "crecipe fetch: no URL", { fix: FETCH_HELP.split("\n")[0] });
  if (!/^https?:\/\//.test(url)) throw new CrecipeError(`${url} is not an http:// or https:// URL`, { fix: FETCH_HELP.split("\n")[0] });
  if (!args.out) throw new CrecipeError("crecipe fetch: where to? (-o FILE)", { fix: FETCH_HELP.split("\n")[0] });
  const seeds = ([] as string[]).concat(args.seed ?? []).map(String);
  const out = String(args.out);
  const tty = process.stderr.isTTY && !args.quiet;
  const controller = new AbortController();
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((signal) => {
    const handler = () => controller.abort(new InterruptedError(signal));
    process.once(signal, handler);
    return () => process.off(signal, handler);
  });
  let drawn = 0;
  const draw = (p: FetchProgress) => {
    const now = performance.now();
    if (now - drawn < 100 && p.done < p.size) return;
    drawn = now;
    const percent = p.size ? Math.floor((p.done / p.size) * 100) : 100;
    process.stderr.write(`\r\x1b[Kcrecipe: fetch ${path.basename(out)}: ${percent}% of ${formatBytes(p.size)}, ${formatBytes(p.reused + p.resumed)} reused, ${formatBytes(p.downloaded)} downloaded`);
  };
  try {
    const report = await fetchChunked(url, { out, seeds, keepIndex: args.index, signal: controller.signal, onProgress: tty ? draw : undefined });
    if (tty) process.stderr.write("\r\x1b[K");
    console.error(
      `crecipe: fetched ${out} (${formatBytes(report.size)}, sha256 ${report.digest.slice(0, 12)}): ` +
        `${formatBytes(report.reused)} reused from seeds, ${report.resumed ? `${formatBytes(report.resumed)} resumed, ` : ""}` +
        `${formatBytes(report.downloaded)} downloaded (index ${formatBytes(report.indexBytes)}, ${report.requests} requests` +
        `${report.retries ? `, ${report.retries} retried` : ""}) in ${report.seconds.toFixed(2)} s`,
    );
    if (args.json) console.log(JSON.stringify(report));
    return 0;
  } catch (error) {
    if (tty) process.stderr.write("\r\x1b[K");
    if (error instanceof FetchError) {
      console.error(`crecipe: error: ${error.message}${error.fix ? `\n  fix: ${error.fix}` : ""}`);
      return 1;
    }
    if (error instanceof InterruptedError) {
      console.error(`crecipe: fetch interrupted; run it again to go on from ${out}.part`);
      throw error;
    }
    if (error instanceof CrecipeError) throw error;
    // Anything else (the disk is full, the out dir is missing): still one block, exit 1.
    const code = (error as NodeJS.ErrnoException).code;
    console.error(`crecipe: error: fetching ${url} into ${out} failed: ${code ? `${code} ${(error as NodeJS.ErrnoException).path ?? ""}`.trim() : (error as Error).message}` +
      `\n  fix: check that ${path.dirname(path.resolve(out))} exists and is writable, and run the same fetch again`);
    return 1;
  } finally {
    for (const off of handlers) off();
  }
}
