// The command's options as minimist reads them: bin/cli.ts parses argv with them, and
// bin/crecipe.js finds the recipe with them before the CLI has loaded (the first argument
// that is no option's value). Plain JavaScript, for that early use.

/** @type {{ string: string[]; boolean: string[]; alias: Record<string, string> }} */
export const OPTIONS = {
  string: ["jobs", "out", "why", "graph", "json", "trace", "push", "cache"],
  boolean: ["dry-run", "check", "list", "clean", "xclean", "verbose", "quiet", "version", "help", "insecure", "cache-read-only"],
  alias: { j: "jobs", o: "out", n: "dry-run", v: "verbose", q: "quiet", h: "help" },
};

/** The first argument of `argv` that is neither an option nor an option's value: the recipe. */
export function recipeArgument(argv) {
  const valued = new Set(OPTIONS.string.map((name) => `--${name}`));
  for (const [short, name] of Object.entries(OPTIONS.alias)) if (OPTIONS.string.includes(name)) valued.add(`-${short}`);
  return argv.find((a, i) => !a.startsWith("-") && !valued.has(argv[i - 1]));
}
