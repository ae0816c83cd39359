/**
 * What a builder reads from the recipe's own sources. The loader (bin/boot.js, with
 * bin/sources.js) analyses every recipe module once, with its transform; the CLI hands
 * that index to the engine here. A target's identity then covers, besides its builder's
 * text and options, every top-level statement the builder reaches: the constants and
 * functions it names, what those name in turn, through local imports. A module loaded
 * some other way (tsx, `deno run` on a script) is not analysed: its builders count by
 * their text alone.
 */

/** A top-level statement a builder reaches, with the hash of its text. */
export interface SourceRef {
  /** Stable name of the statement: "FILE#NAME". */
  readonly key: string;
  /** Hash of its text (comments and types left out; nested builders of crecipe helpers too). */
  readonly hash: string;
  /** The names it declares, for messages. */
  readonly name: string;
  /** Its source file. */
  readonly file: string;
  /** Its line in the source file, when known. */
  readonly line?: number;
  /** How it declares: "const", "let", "var", "function", "class", or "statement". */
  readonly kind: string;
}

/** The loader's analysis: what a function with this text (`fn.toString()`) reaches. */
export interface SourceIndex {
  /** The statements a function with this text reaches, sorted by key; none when the text is not in an analysed module. */
  refs(text: string): SourceRef[];
}

let index: SourceIndex | undefined;

/**
 * Use the loader's analysis of the recipe's sources for the targets declared from now
 * on (the CLI does this before it loads a recipe).
 *
 * ```ts
 * import { sourceIndex } from "../bin/boot.js"; // the loader that analysed the recipe
 * useSourceIndex(sourceIndex);
 * ```
 */
export function useSourceIndex(next: SourceIndex | undefined): void {
  index = next;
}

/** The statements the recipe functions reach (none without an index). */
export function sourceRefs(code: readonly Function[]): SourceRef[] {
  if (!index) return [];
  if (code.length === 1) return index.refs(code[0].toString());
  const reached = new Map<string, SourceRef>();
  for (const fn of code) for (const ref of index.refs(fn.toString())) reached.set(ref.key, ref);
  return [...reached.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** "GREETING (r.ts:3)": a statement as messages show it, its file relative to the current directory. */
export function describeRef(ref: Pick<SourceRef, "name" | "file" | "line">): string {
  const cwd = process.cwd() + "/";
  const file = ref.file.startsWith(cwd) ? ref.file.slice(cwd.length) : ref.file;
  return `${ref.name} (${file}${ref.line ? `:${ref.line}` : ""})`;
}
