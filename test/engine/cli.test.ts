/** The CLI's other verbs, one behaviour a test: --list, --graph, --clean (keeps precious), --xclean, usage errors. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { recipeArgument } from "../../bin/options.js";
import { crecipe, modUrl, tempDir, write } from "../helpers.ts";

const recipe = `
import { file, here, target } from ${JSON.stringify(modUrl)};
import { readFileSync, writeFileSync } from "node:fs";
export const slow = file("download.txt", async (out, ctx) => { writeFileSync(out, await ctx.read(here("input.txt"))); }, { precious: true });
export const app = file("app.txt", async (out, ctx) => { writeFileSync(out, "app " + readFileSync(await ctx.need(slow), "utf8")); });
export default app;
`;

const root = tempDir();
let projects = 0;
/** A project with the recipe r.ts and its input, built once when `built`. */
function project(built: boolean): string {
  const dir = path.join(root, String(projects++));
  write(dir, "input.txt", "data\n");
  write(dir, "r.ts", recipe);
  if (built) assert.equal(crecipe(dir, ["r.ts"]).status, 0);
  return dir;
}

describe("--list", () => {
  it("--list shows a target never built as would rebuild, with why and [precious]", () => {
    const list = crecipe(project(false), ["r.ts", "--list"]);
    assert.match(list.stdout, /^download\.txt +file +would rebuild +it was never built \[precious\]$/m);
  });

  it("--list shows a built target as up to date", () => {
    assert.match(crecipe(project(true), ["r.ts", "--list"]).stdout, /^app\.txt +file +up to date$/m);
  });
});

describe("--graph", () => {
  it("--graph prints what each target needed when built as an indented tree, host files included", () => {
    assert.match(crecipe(project(true), ["r.ts", "--graph"]).stdout, /^app\.txt\n  download\.txt\n    .*input\.txt \(host file\)$/m);
  });

  it("--graph=dot prints those needs as Graphviz edges", () => {
    assert.match(crecipe(project(true), ["r.ts", "--graph=dot"]).stdout, /"app\.txt" -> "download\.txt";/);
  });
});

describe("--clean and --xclean", () => {
  it("--clean removes outputs and keeps the precious ones", () => {
    const dir = project(true);
    const clean = crecipe(dir, ["r.ts", "--clean"]);
    assert.equal(clean.status, 0);
    assert.match(clean.stderr, /removed 1 outputs; kept download\.txt/);
    assert.ok(fs.existsSync(path.join(dir, "out/download.txt")));
    assert.ok(!fs.existsSync(path.join(dir, "out/app.txt")));
  });

  it("a build after --clean does not rebuild what --clean kept", () => {
    const dir = project(true);
    assert.equal(crecipe(dir, ["r.ts", "--clean"]).status, 0);
    assert.match(crecipe(dir, ["r.ts"]).stderr, /1 built, 1 up to date/, "the precious download is not rebuilt");
  });

  it("--xclean removes the whole out dir", () => {
    const dir = project(true);
    assert.equal(crecipe(dir, ["--xclean"]).status, 0);
    assert.ok(!fs.existsSync(path.join(dir, "out")));
  });
});

describe("usage errors", () => {
  it("an unknown option is a usage error, exit 2", () => {
    const bad = crecipe(project(false), ["r.ts", "--no-such-option"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown option --no-such-option/);
  });

  it("an unknown target name is a usage error whose fix lists the known targets", () => {
    const missing = crecipe(project(false), ["r.ts", "nothing.here"]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /no target named nothing\.here .*\n  fix: known targets: download\.txt, app\.txt/);
  });

  it("a recipe that does not compile is one line naming the file, line and column, exit 2", () => {
    const dir = project(false);
    write(dir, "broken.ts", "export const x: number = ;\n");
    const broken = crecipe(dir, ["broken.ts"]);
    assert.equal(broken.status, 2);
    assert.match(broken.stderr, /^crecipe: error: cannot compile .*broken\.ts:1:26: Unexpected ";"$/m);
  });
});

describe("loading a recipe", () => {
  const real = () => path.join(path.dirname(fileURLToPath(import.meta.resolve("@esbuild/linux-x64/package.json"))), "bin/esbuild");
  /** An esbuild binary that logs each call's arguments, and fails the command's transforms when `failCommand`. */
  const wrapper = (dir: string, failCommand: boolean) => {
    const script = path.join(dir, "esbuild-wrapper");
    fs.writeFileSync(script, `#!/bin/sh\necho "$*" >> ${JSON.stringify(path.join(dir, "esbuild.log"))}\n` +
      (failCommand ? 'case "$*" in *--loader=*) exit 1;; esac\n' : "") + `exec ${JSON.stringify(real())} "$@"\n`, { mode: 0o755 });
    return script;
  };
  it("the recipe is found before the CLI loads as the CLI finds it: the first argument that is no option's value", () => {
    assert.equal(recipeArgument(["-o", "x.ts", "--cache", "dir:c", "-q", "r.ts", "t"]), "r.ts");
    assert.equal(recipeArgument(["--jobs", "2", "--out=o", "-v", "r.ts"]), "r.ts");
    assert.equal(recipeArgument(["--version"]), undefined);
  });

  const edited = (dir: string, word: string) => write(dir, "r.ts", recipe.replace('"app "', JSON.stringify(`${word} `)));

  it("an edited recipe is transformed by esbuild's command (no service started) and builds what the edit says", { skip: process.arch !== "x64" && "the test names the x64 binary" }, () => {
    const dir = project(true);
    edited(dir, "edited");
    const run = crecipe(dir, ["-o", "out", "r.ts"], { ESBUILD_BINARY_PATH: wrapper(dir, false) });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(fs.readFileSync(path.join(dir, "out/app.txt"), "utf8"), "edited data\n");
    const calls = fs.readFileSync(path.join(dir, "esbuild.log"), "utf8");
    assert.match(calls, new RegExp(`--loader=ts .*--sourcefile=${fs.realpathSync(dir)}/r\\.ts`));
    assert.doesNotMatch(calls, /--service/);
  });

  it("where esbuild's command fails, its API transforms the recipe to the same effect", { skip: process.arch !== "x64" && "the test names the x64 binary" }, () => {
    const dir = project(true);
    edited(dir, "again");
    const run = crecipe(dir, ["r.ts"], { ESBUILD_BINARY_PATH: wrapper(dir, true) });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(fs.readFileSync(path.join(dir, "out/app.txt"), "utf8"), "again data\n");
    assert.match(fs.readFileSync(path.join(dir, "esbuild.log"), "utf8"), /--service/, "the API's service did the transform");
  });
});

it("--version prints the version alone", () => {
  assert.match(crecipe(root, ["--version"]).stdout, /^\d+\.\d+\.\d+\n$/);
});

it("--help prints the usage", () => {
  assert.match(crecipe(root, ["--help"]).stdout, /usage: crecipe \[options\] RECIPE\.ts \[TARGET…\]/);
});
