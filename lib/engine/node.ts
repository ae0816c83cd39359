/**
 * Targets as values: `target(name, builder, options)` declares an immutable node and
 * builds nothing. The one registry of declared names lives here.
 */
import { CrecipeError } from "./errors.ts";
import { hashable, sha256Hex, UnstorableValue } from "./hash.ts";
import { captureSite } from "./site.ts";
import { sourceRefs } from "./sources.ts";
import { type Builder, NODE, type Node, type TargetOptions } from "./types.ts";

export type { Builder, Node, TargetOptions };

const registry = new Map<string, Node>();
let building = 0;
let builds = 0;
const lateDeclarations = new Set<string>();

/** The engine marks build time: a target declared then cannot be checked by a no-op run. */
export function markBuilding(delta: 1 | -1): void {
  building += delta;
}

/** Whether a build() is running in this process. */
export const isBuilding = (): boolean => building > 0;

/** build() counts its calls, no-ops too: a script that built while it loaded needs no default export. */
export function countBuild(): void {
  builds++;
}

/** How many times build() was called in this process. */
export function buildsStarted(): number {
  return builds;
}

/** Was this target first declared while a build was running? */
export function declaredLate(name: string): boolean {
  return lateDeclarations.has(name);
}

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.+@-]*$/;

/**
 * A name is a file name in the out dir, plus a suffix: NAME.json, NAME.lock, NAME.log, a
 * temp dir NAME.PID.XXXXXX, and the longest, a tree's manifest NAME.<16 hex>.list. A file
 * name is at most 255 bytes (NAME_MAX on Linux and most file systems).
 */
const MAX_NAME_BYTES = 255 - ".0123456789abcdef.list".length;

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
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_NAME_BYTES) {
    throw new CrecipeError(`target name ${JSON.stringify(name.slice(0, 40) + "…")} is too long: ${bytes} bytes, at most ${MAX_NAME_BYTES}`, {
      fix: `use a shorter name: it names files in the out dir (NAME.<16 hex>.list must fit in 255 bytes)`,
    });
  }
  const kind = opts.kind ?? "target";
  const recipe = sha256Hex(JSON.stringify([kind, builder.toString(), hashableOptions(name, opts.options ?? null)]));
  // What the builder reads from the recipe's sources (a constant, a function, a local
  // module's export) counts too; a builder that reads none keeps the identity it had.
  const sources = sourceRefs(opts.source === undefined ? [builder] : [opts.source].flat());
  const identity = sources.length ? sourcesIdentity(recipe, sources) : recipe;
  const existing = registry.get(name);
  const site = captureSite(target);
  if (existing) {
    if (existing.identity === identity && existing.precious === Boolean(opts.precious)) return existing as Node<T>;
    // A helper's derived name (libs.layer) taken by another definition (libs on another
    // diffbase, a run with other options): this one takes its other name.
    if (opts.derived) {
      const other = typeof opts.derived === "string" ? opts.derived : variantName(name, identity);
      return target(other, builder, { ...opts, derived: typeof opts.derived === "string" ? true : undefined });
    }
    throw new CrecipeError(
      `target "${name}" is declared twice with different definitions:\n  first at  ${existing.site}\n  then at   ${site()}`,
      { fix: "give one of them another name, or make both definitions equal", target: name },
    );
  }
  let shown: string | undefined;
  const node: Node<T> = Object.freeze({
    [NODE]: name,
    name,
    kind,
    builder,
    options: opts.options ?? null,
    precious: Boolean(opts.precious),
    shared: Boolean(opts.shared),
    signsFiles: Boolean(opts.signsFiles),
    description: opts.description,
    identity,
    recipe,
    sources,
    get site() {
      return (shown ??= site());
    },
  });
  registry.set(name, node);
  if (building > 0) lateDeclarations.add(name);
  return node;
}

/** The identity of a target whose builder reads statements of the recipe's sources. */
export function sourcesIdentity(recipe: string, sources: readonly { key: string; hash: string }[]): string {
  return sha256Hex(JSON.stringify([recipe, sources.map((s) => [s.key, s.hash])]));
}

/**
 * Options are hashed, never stored: a function in them counts by its text, a Map or a
 * BigInt by what it holds. Only what has no content to hash is refused: a circular
 * structure, a Symbol.
 */
function hashableOptions(name: string, options: unknown): unknown {
  try {
    return hashable(options, "options");
  } catch (error) {
    if (!(error instanceof UnstorableValue)) throw error;
    throw new CrecipeError(`the options of target ${name} cannot be hashed: ${error.message}`, { target: name, fix: error.hint });
  }
}

/** NAME with a short hash of its definition before its last suffix: libs.runlocal → libs+1f2e3d.runlocal. */
function variantName(name: string, identity: string): string {
  const dot = name.lastIndexOf(".");
  const tag = `+${identity.slice(0, 6)}`;
  return dot > 0 ? name.slice(0, dot) + tag + name.slice(dot) : name + tag;
}

/**
 * A target given as a node or by its declared name ("libs"). An unknown name is an
 * error that lists the nearest declared names.
 */
export function resolveTarget<T = unknown>(value: Node<T> | string): Node<T> {
  if (typeof value !== "string") return value;
  const node = registry.get(value);
  if (node) return node as Node<T>;
  const near = nearestNames(value, [...registry.keys()]);
  throw new CrecipeError(
    near.length ? `no target "${value}"; did you mean ${near.map((n) => `"${n}"`).join(" or ")}?` : `no target "${value}" is declared`,
    { fix: near.length ? undefined : `declare it before naming it, e.g. fs("${value}", async (root) => { … }), or pass the node itself` },
  );
}

/** Up to three declared names closest to `name` by edit distance. */
function nearestNames(name: string, names: string[]): string[] {
  const limit = Math.max(2, Math.floor(name.length / 3));
  return names
    .map((n) => ({ n, d: editDistance(name, n) }))
    .filter((x) => x.d <= limit)
    .sort((a, b) => a.d - b.d || a.n.length - b.n.length || (a.n < b.n ? -1 : 1))
    .slice(0, 3)
    .map((x) => x.n);
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
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
