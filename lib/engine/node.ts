/**
 * Targets as values: `target(name, builder, options)` declares an immutable node and
 * builds nothing. The one registry of declared names lives here.
 */
import { CrecipeError } from "./errors.ts";
import { NODE, sha256, stableStringify } from "./hash.ts";
import type { BuildContext } from "./context.ts";

export type Builder<T = unknown> = (ctx: BuildContext) => Promise<T> | T;

export interface TargetOptions {
  /** A kind shown in listings ("file", "fs", "layer", …). */
  kind?: string;
  /** Inputs that define the target besides its builder's text (hashed, JSON-like). */
  options?: unknown;
  /** Kept by `--clean` (slow downloads and installs, like the cookbook's clean.do). */
  precious?: boolean;
  /** A one-line description for `--list`. */
  description?: string;
}

/** A declared target. Immutable; compare by identity. */
export interface Node<T = unknown> {
  readonly [NODE]: string;
  readonly name: string;
  readonly kind: string;
  readonly builder: Builder<T>;
  readonly options: unknown;
  readonly precious: boolean;
  readonly description?: string;
  /** Hash of kind, builder text and options: a change means "rebuild". */
  readonly identity: string;
  /** Where it was declared, e.g. "recipes/simple.ts:12:21". Computed on demand. */
  readonly site: string;
}

const registry = new Map<string, Node>();
let building = 0;
const lateDeclarations = new Set<string>();

/** The engine marks build time: a target declared then cannot be checked by a no-op run. */
export function markBuilding(delta: 1 | -1): void {
  building += delta;
}

/** Was this target first declared while a build was running? */
export function declaredLate(name: string): boolean {
  return lateDeclarations.has(name);
}
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.+@-]*$/;

/**
 * Declare a target. Declaring the same name again with an equal definition returns the
 * same node; a different definition is an error naming both places.
 *
 * ```ts
 * export const greeting = target("greeting.txt", async (ctx) => {
 *   await writeFile(ctx.out, "hello\n");
 * });
 * ```
 */
export function target<T>(name: string, builder: Builder<T>, opts: TargetOptions = {}): Node<T> {
  if (!NAME_RE.test(name)) {
    throw new CrecipeError(`bad target name ${JSON.stringify(name)}`, {
      fix: "use letters, digits and . _ + @ - (no slash, not starting with a dot)",
    });
  }
  const kind = opts.kind ?? "target";
  const identity = sha256(stableStringify([kind, builder.toString(), opts.options ?? null]));
  const existing = registry.get(name);
  const siteHolder: { stack?: string } = {};
  Error.captureStackTrace(siteHolder, target);
  if (existing) {
    if (existing.identity === identity && existing.precious === Boolean(opts.precious)) return existing as Node<T>;
    throw new CrecipeError(
      `target "${name}" is declared twice with different definitions:\n  first at  ${existing.site}\n  then at   ${siteOf(siteHolder)}`,
      { fix: "give one of them another name, or make both definitions equal", target: name },
    );
  }
  let site: string | undefined;
  const node: Node<T> = Object.freeze({
    [NODE]: name,
    name,
    kind,
    builder,
    options: opts.options ?? null,
    precious: Boolean(opts.precious),
    description: opts.description,
    identity,
    get site() {
      return (site ??= siteOf(siteHolder));
    },
  });
  registry.set(name, node);
  if (building > 0) lateDeclarations.add(name);
  return node;
}

/** The node declared under `name`, if any. */
export function lookup(name: string): Node | undefined {
  return registry.get(name);
}

/** Every declared node, in declaration order. */
export function declared(): Node[] {
  return [...registry.values()];
}

export function isNode(value: unknown): value is Node {
  return typeof value === "object" && value !== null && typeof (value as Node)[NODE] === "string";
}

/** The first stack frame outside crecipe's own lib/ (the recipe line that declared it). */
function siteOf(holder: { stack?: string }): string {
  const libDir = new URL("../", import.meta.url).pathname;
  const frames = (holder.stack ?? "").split("\n").slice(1);
  for (const frame of frames) {
    const m = frame.match(/\(?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?\s*$/);
    if (!m) continue;
    const file = originalFile(m[1].replace(/^file:\/\//, ""));
    if (file.startsWith(libDir)) continue;
    return `${relative(file)}:${m[2]}:${m[3]}`;
  }
  return "(unknown place)";
}

/** Map a cache file back to its source (see bin/boot.js). */
export function originalFile(file: string): string {
  const m = file.match(/\/ts(\/.*\.(?:ts|mts|tsx))\.mjs$/);
  return m ? decodeURIComponent(m[1]) : decodeURIComponent(file);
}

function relative(file: string): string {
  const cwd = process.cwd() + "/";
  return file.startsWith(cwd) ? file.slice(cwd.length) : file;
}
