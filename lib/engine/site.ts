/**
 * Where in a recipe something happened, from the stack (as zx's `src/error.ts` does it,
 * once): the file and line that declared a target, or the file that called `here()`.
 * Recipes run from a transform cache (bin/boot.js): cache paths map back to sources.
 */
import { fileURLToPath } from "node:url";

// "at fn (/abs/file.ts:3:7)" or "at /abs/file.ts:3:7"; not node:internal/… frames.
const FRAME = /(?:^|[\s(])((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?\s*$/;
const libDir = fileURLToPath(new URL("../", import.meta.url));
const binDir = fileURLToPath(new URL("../../bin/", import.meta.url));
/** crecipe's own code, as a source file or in the bundle bin/boot.js makes of it. */
const ours = (file: string) => file.startsWith(libDir) || /\/bundle\/[0-9a-f]{12}\/[0-9a-f]{24}\//.test(file);

/** A frame's file, line and column, with cache paths mapped to their sources. */
function frames(stack: string | undefined): { file: string; line: string; column: string }[] {
  const found: { file: string; line: string; column: string }[] = [];
  for (const frame of (stack ?? "").split("\n").slice(1)) {
    const m = frame.match(FRAME);
    if (m) found.push({ file: originalFile(m[1].startsWith("file:") ? fileURLToPath(m[1]) : m[1]), line: m[2], column: m[3] });
  }
  return found;
}

/** Map a transform-cache file back to its source (see bin/boot.js). */
export function originalFile(file: string): string {
  const m = file.match(/\/ts(\/.*\.(?:ts|mts|tsx))\.mjs$/);
  return m ? decodeURIComponent(m[1]) : decodeURIComponent(file);
}

/**
 * The first caller outside crecipe's own lib/ above `fn`, as "recipe.ts:LINE:COL"
 * relative to the current directory. Capture the stack early (it is cheap) and format
 * it only when a message needs it.
 */
export function captureSite(fn: Function): () => string {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, fn);
  return () => {
    for (const f of frames(holder.stack)) {
      if (ours(f.file)) continue;
      return `${relative(f.file)}:${f.line}:${f.column}`;
    }
    return "(unknown place)";
  };
}

/** The source file of the code that called `fn` (the recipe calling `here()`). */
export function callerFile(fn: Function): string | undefined {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, fn);
  return frames(holder.stack)[0]?.file;
}

/**
 * Where a recipe threw `error`: its first frame outside crecipe (lib/, the CLI and its
 * loader) and outside node_modules, as "recipe.ts:LINE:COL", or undefined.
 */
export function thrownAt(error: unknown): string | undefined {
  const stack = (error as { stack?: unknown } | undefined)?.stack;
  if (typeof stack !== "string") return undefined;
  for (const f of frames(stack)) {
    if (ours(f.file) || f.file.startsWith(binDir) || f.file.includes("/node_modules/")) continue;
    return `${relative(f.file)}:${f.line}:${f.column}`;
  }
  return undefined;
}

function relative(file: string): string {
  const cwd = process.cwd() + "/";
  return file.startsWith(cwd) ? file.slice(cwd.length) : file;
}
