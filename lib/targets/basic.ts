/** The smallest helpers: a file target, a value target, and paths beside the recipe. */
import * as path from "node:path";
import { type Node, target, type TargetOptions } from "../engine/node.ts";
import { callerFile } from "../engine/site.ts";
import type { BuildContext } from "../engine/types.ts";

/**
 * A target whose output is one file, written by `builder` at `out`. A shared cache
 * (`--cache`) may provide it; pass `{ shared: false }` when the builder has effects
 * beyond its file, or reads what crecipe does not see.
 *
 * ```ts
 * export const hello = file("hello", async (out) => { await $`cc -o ${out} ${here("hello.c")}`; });
 * ```
 */
export function file(
  name: string,
  builder: (out: string, ctx: BuildContext) => Promise<unknown> | unknown,
  options: Omit<TargetOptions, "kind"> = {},
): Node<unknown> {
  return target(name, (ctx) => builder(ctx.out, ctx), {
    shared: true,
    ...options,
    kind: "file",
    options: [builder.toString(), options.options ?? null],
    source: builder,
  });
}

/** A target whose output is the JSON value its builder returns (no file). */
export function value<T>(name: string, builder: (ctx: BuildContext) => Promise<T> | T, options: Omit<TargetOptions, "kind"> = {}): Node<T> {
  return target(name, builder, { ...options, kind: "value" });
}

/**
 * A path relative to the file that calls `here()` (the recipe), not to the current
 * directory: `here("hello.c")`.
 */
export function here(...parts: string[]): string {
  const file = callerFile(here);
  return file ? path.resolve(path.dirname(file), ...parts) : path.resolve(...parts);
}
