// What a builder can depend on in the recipe's own sources, found from the code.
//
// A target's identity is its builder's text plus its options; a builder that reads a
// module-level constant or calls a module-level function depends on those too. Each
// module esbuild transforms (bin/boot.js) is analysed once, with the transform, and the
// result is cached beside it: its top-level statements (what each declares, the hash of
// its text, the top-level names it mentions), and every function in it (the hash of its
// text, which is what `fn.toString()` returns at run time, and the names it mentions).
// At run time `sourceRefs(fn)` follows those names, through local imports too, to every
// top-level statement the builder can reach, and returns each with the hash of its text.
//
// The analysis reads esbuild's output (plain ES2022 it printed itself, one statement a
// line at the top level, no comments, no types), with a tokenizer rather than a parser,
// and errs on the side of more: a name counts wherever it is not a property, so a local
// variable that shadows a top-level one adds a dependency that is not one (a rebuild too
// many, never one too few). The bodies of functions passed to crecipe's own helpers
// (`file("x", async (out) => …)`) are left out of what their statement means to others:
// another builder that mentions `x` depends on x's output through the build graph, not
// on x's builder's text.
//
// Plain JavaScript, like boot.js: it runs before anything can load TypeScript.

import { createHash } from "node:crypto";

const sha = (text) => createHash("sha256").update(text).digest("hex").slice(0, 32);

// Words that are never a reference to a binding.
const KEYWORDS = new Set(
  ("break case catch class const continue debugger default delete do else export extends false finally for function if import in " +
    "instanceof new null return super switch this throw true try typeof var void while with yield let static await async of get set " +
    "undefined arguments").split(" "),
);
// After these words an expression starts, so `/` there begins a regular expression.
const BEFORE_EXPRESSION = new Set("return typeof case do else in of new delete void throw instanceof yield await".split(" "));
const PUNCTUATORS = [
  ">>>=", "...", "===", "!==", "**=", "<<=", ">>=", ">>>", "&&=", "||=", "??=",
  "=>", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "**", "<<", ">>",
];
const ID_START = /[A-Za-z_$\u0080-\uffff]/;
const ID_PART = /[\w$\u0080-\uffff]/;
const NUMBER = /(?:0[xXoObB][\da-fA-F_]+n?|\d[\d_]*\.?[\d_]*(?:[eE][+-]?\d+)?n?|\.\d[\d_]*(?:[eE][+-]?\d+)?)/y;

/**
 * Tokens of ES2022 source: { t: "id" | "p" | "str" | "num" | "re" | "tpl", v, s, e, line,
 * first (first on its line) }. A template is split at its substitutions: its pieces are
 * "tpl" tokens, `opens` when a piece ends with `${`, `closes` when it starts with `}`.
 */
export function tokenize(code) {
  const tokens = [];
  const templates = []; // for each open `{` or `${`: is it a template substitution?
  let i = 0;
  let line = 0;
  let lineStart = true;
  const push = (token) => {
    token.line = line;
    token.first = lineStart;
    lineStart = false;
    tokens.push(token);
  };
  const regexAllowed = () => {
    const last = tokens[tokens.length - 1];
    if (!last) return true;
    if (last.t === "p") return !(last.v === ")" || last.v === "]" || last.v === "}");
    if (last.t === "id") return BEFORE_EXPRESSION.has(last.v);
    if (last.t === "tpl") return last.opens;
    return false;
  };
  const template = (start, closes) => {
    let j = start;
    for (; j < code.length; j++) {
      const c = code[j];
      if (c === "\\") j++;
      else if (c === "\n") line++;
      else if (c === "`") {
        push({ t: "tpl", v: code.slice(start - 1, j + 1), s: start - 1, e: j + 1, closes, opens: false });
        return j + 1;
      } else if (c === "$" && code[j + 1] === "{") {
        push({ t: "tpl", v: code.slice(start - 1, j + 2), s: start - 1, e: j + 2, closes, opens: true });
        templates.push(true);
        return j + 2;
      }
    }
    return j;
  };
  while (i < code.length) {
    const c = code[i];
    if (c === "\n") {
      line++;
      lineStart = true;
      i++;
    } else if (c === " " || c === "\t" || c === "\r") {
      i++;
    } else if (c === "/" && code[i + 1] === "/") {
      while (i < code.length && code[i] !== "\n") i++;
    } else if (c === "/" && code[i + 1] === "*") {
      const end = code.indexOf("*/", i + 2);
      const stop = end < 0 ? code.length : end + 2;
      for (let j = i; j < stop; j++) if (code[j] === "\n") line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < code.length && code[j] !== c && code[j] !== "\n") j += code[j] === "\\" ? 2 : 1;
      push({ t: "str", v: code.slice(i, j + 1), s: i, e: j + 1 });
      i = j + 1;
    } else if (c === "`") {
      i = template(i + 1, false);
    } else if (c === "}" && templates.length && templates[templates.length - 1]) {
      templates.pop();
      i = template(i + 1, true);
    } else if (ID_START.test(c) || c === "#" || c === "\\") {
      let j = i + 1;
      while (j < code.length && (ID_PART.test(code[j]) || code[j] === "\\")) j++;
      push({ t: c === "#" ? "priv" : "id", v: code.slice(i, j), s: i, e: j });
      i = j;
    } else if (/\d/.test(c) || (c === "." && /\d/.test(code[i + 1] ?? ""))) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(code);
      const j = m ? i + m[0].length : i + 1;
      push({ t: "num", v: code.slice(i, j), s: i, e: j });
      i = j;
    } else if (c === "/" && regexAllowed()) {
      let j = i + 1;
      let inClass = false;
      for (; j < code.length && code[j] !== "\n"; j++) {
        if (code[j] === "\\") j++;
        else if (code[j] === "[") inClass = true;
        else if (code[j] === "]") inClass = false;
        else if (code[j] === "/" && !inClass) break;
      }
      j++;
      while (j < code.length && ID_PART.test(code[j])) j++;
      push({ t: "re", v: code.slice(i, j), s: i, e: j });
      i = j;
    } else {
      const v = PUNCTUATORS.find((p) => code.startsWith(p, i)) ?? c;
      if (v === "{") templates.push(false);
      else if (v === "}") templates.pop();
      push({ t: "p", v, s: i, e: i + v.length });
      i += v.length;
    }
  }
  return tokens;
}

const opens = (tk) => (tk.t === "p" && (tk.v === "(" || tk.v === "[" || tk.v === "{")) || (tk.t === "tpl" && tk.opens);
const closes = (tk) => (tk.t === "p" && (tk.v === ")" || tk.v === "]" || tk.v === "}")) || (tk.t === "tpl" && tk.closes);
const is = (tk, v) => tk !== undefined && tk.t === "p" && tk.v === v;
const isId = (tk, v) => tk !== undefined && tk.t === "id" && (v === undefined || tk.v === v);

/** For each opening token, the index of the token that closes it (and the reverse). */
function brackets(tokens) {
  const match = new Int32Array(tokens.length).fill(-1);
  const stack = [];
  for (let k = 0; k < tokens.length; k++) {
    const tk = tokens[k];
    if (closes(tk) && stack.length) {
      const open = stack.pop();
      match[open] = k;
      match[k] = open;
    }
    if (opens(tk)) stack.push(k);
  }
  return match;
}

/** Is the identifier at k a name that may refer to a binding (not a property or a key)? */
function isReference(tokens, k) {
  const tk = tokens[k];
  if (tk.t !== "id" || KEYWORDS.has(tk.v)) return false;
  const prev = tokens[k - 1];
  if (is(prev, ".") || is(prev, "?.")) return false;
  if ((is(prev, "{") || is(prev, ",")) && is(tokens[k + 1], ":")) return false; // an object key
  return true;
}

/** Every function in the code: [first token, last token] (arrows, function expressions and declarations, methods). */
function functions(tokens, match) {
  const spans = [];
  for (let k = 0; k < tokens.length; k++) {
    const tk = tokens[k];
    if (isId(tk, "function") && !is(tokens[k - 1], ".")) {
      const start = isId(tokens[k - 1], "async") ? k - 1 : k;
      let j = k + 1;
      if (is(tokens[j], "*")) j++;
      if (isId(tokens[j])) j++;
      if (!is(tokens[j], "(") || match[j] < 0 || !is(tokens[match[j] + 1], "{")) continue;
      spans.push([start, match[match[j] + 1]]);
    } else if (is(tk, "=>")) {
      let start = k - 1;
      if (is(tokens[start], ")")) start = match[start];
      if (start < 0) continue;
      if (isId(tokens[start - 1], "async") && !is(tokens[start - 2], ".")) start--;
      const end = is(tokens[k + 1], "{") ? match[k + 1] : expressionEnd(tokens, match, k + 1);
      if (end >= k) spans.push([start, end]);
    } else if (isId(tk) && !KEYWORDS.has(tk.v) || isId(tk, "get") || isId(tk, "set") || isId(tk, "async") || tk.t === "str" || tk.t === "priv") {
      // A method: `name(…) {`, after `{`, `,`, `;`, `}` or a modifier.
      const open = tokens[k + 1];
      if (!is(open, "(") || match[k + 1] < 0 || !is(tokens[match[k + 1] + 1], "{")) continue;
      let start = k;
      while (is(tokens[start - 1], "*") || isId(tokens[start - 1], "async") || isId(tokens[start - 1], "get") || isId(tokens[start - 1], "set")) start--;
      const before = tokens[start - 1];
      if (!(before === undefined || is(before, "{") || is(before, ",") || is(before, ";") || is(before, "}") || isId(before, "static"))) continue;
      spans.push([start, match[match[k + 1] + 1]]);
    }
  }
  return spans;
}

/** Where an arrow's expression body ends: before a `,` `;` `:` or closing bracket at its level. */
function expressionEnd(tokens, match, from) {
  let pending = 0; // `?` of conditionals inside the body
  let k = from;
  for (; k < tokens.length; k++) {
    const tk = tokens[k];
    if (opens(tk) && match[k] > k) {
      k = match[k];
      continue;
    }
    if (closes(tk) || is(tk, ",") || is(tk, ";")) break;
    if (is(tk, "?")) pending++;
    else if (is(tk, ":")) {
      if (pending === 0) break;
      pending--;
    }
  }
  return k - 1;
}

/** First token of each top-level statement: at depth 0, first on its line, not a closing bracket. */
function statements(tokens) {
  const starts = [];
  let depth = 0;
  for (let k = 0; k < tokens.length; k++) {
    const tk = tokens[k];
    if (closes(tk)) depth--;
    else if (depth === 0 && (tk.first || k === 0)) starts.push(k);
    if (opens(tk)) depth++;
  }
  return starts.map((s, n) => [s, (starts[n + 1] ?? tokens.length) - 1]);
}

/** The names a `const`/`let`/`var` statement declares (tokens from..to, after the keyword). */
function declaredNames(tokens, match, from, to) {
  const names = [];
  let k = from;
  while (k <= to) {
    // The pattern: up to `=`, `,` or `;` at this level.
    const pattern = k;
    if (opens(tokens[k])) k = match[k] + 1;
    else k++;
    for (let j = pattern; j < k; j++) {
      if (isReference(tokens, j) && !is(tokens[j - 1], "=") && !is(tokens[j - 1], "...") || (isId(tokens[j]) && is(tokens[j - 1], "..."))) {
        names.push(tokens[j].v);
      }
    }
    // Skip the initializer, to the next declarator.
    while (k <= to && !is(tokens[k], ",") && !is(tokens[k], ";")) k = opens(tokens[k]) && match[k] > k ? match[k] + 1 : k + 1;
    if (is(tokens[k], ";") || k > to) break;
    k++;
  }
  return names;
}

/** Decode the generated-line → source-line table of an inline source map (its first segment per line). */
export function sourceLines(code, skip = 0) {
  const prefix = "//# sourceMappingURL=data:application/json;base64,";
  const at = code.lastIndexOf(prefix);
  if (at < 0) return [];
  let map;
  try {
    map = JSON.parse(Buffer.from(code.slice(at + prefix.length).trim(), "base64").toString("utf8"));
  } catch {
    return [];
  }
  const lines = [];
  let source = 0;
  let sourceLine = 0;
  const values = [];
  for (const [generated, segments] of map.mappings.split(";").entries()) {
    let first;
    for (const segment of segments.split(",")) {
      if (!segment) continue;
      decodeVlq(segment, values);
      if (values.length >= 4) {
        source += values[1];
        sourceLine += values[2];
        first ??= sourceLine;
      }
    }
    if (generated >= skip) lines[generated - skip] = first;
  }
  return lines;
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
function decodeVlq(segment, out) {
  out.length = 0;
  let value = 0;
  let shift = 0;
  for (const c of segment) {
    const digit = BASE64.indexOf(c);
    value += (digit & 31) << shift;
    if (digit & 32) shift += 5;
    else {
      out.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
}

/**
 * Analyse one module's code (esbuild's output). `classify(spec)` says what an import is:
 * { file } for a local module that is analysed too, "crecipe" for crecipe's own API, or
 * null for anything else (a package, a builtin). `lines` maps code lines to source lines.
 *
 * Returns { statements: [{ names, kind, line, hash, refs }], bindings: { name: statement
 * index | { from, name } }, exports: { name: local | { from, name } }, stars: [file],
 * functions: { hash: [names] } }.
 */
export function analyze(code, classify, lines = []) {
  const mapIndex = code.lastIndexOf("\n//# sourceMappingURL=");
  const body = mapIndex < 0 ? code : code.slice(0, mapIndex + 1);
  const tokens = tokenize(body);
  const match = brackets(tokens);
  const result = { statements: [], bindings: {}, exports: {}, stars: [], functions: {} };
  const crecipeNames = new Set();
  const spans = statements(tokens);

  // Pass 1: what each statement declares; imports and exports.
  const declared = spans.map(([from, to]) => {
    let k = from;
    const tk = tokens[k];
    const stringAt = (j) => (tokens[j]?.t === "str" ? JSON.parse(tokens[j].v.replace(/^'|'$/g, '"')) : undefined);
    if (isId(tk, "import") && !is(tokens[k + 1], "(") && !is(tokens[k + 1], ".")) {
      const fromAt = tokens.slice(from, to + 1).findIndex((t) => isId(t, "from"));
      const spec = fromAt < 0 ? undefined : stringAt(from + fromAt + 1);
      const target = spec === undefined ? null : classify(spec);
      const imported = [];
      for (let j = k + 1; fromAt >= 0 && j < from + fromAt; j++) {
        const t = tokens[j];
        if (is(t, "*") && isId(tokens[j + 1], "as")) imported.push([tokens[j + 2].v, "*"]), (j += 2);
        else if (is(t, "{")) {
          const close = match[j];
          for (j++; j < close; j++) {
            if (!isId(tokens[j]) && tokens[j].t !== "str") continue;
            const name = tokens[j].t === "str" ? stringAt(j) : tokens[j].v;
            if (isId(tokens[j + 1], "as")) imported.push([tokens[j + 2].v, name]), (j += 2);
            else imported.push([name, name]);
          }
        } else if (isId(t) && !isId(t, "from")) imported.push([t.v, "default"]);
      }
      for (const [local, name] of imported) {
        if (target === "crecipe") crecipeNames.add(local);
        result.bindings[local] = target && target !== "crecipe" ? { from: target.file, name } : { external: true };
      }
      return { kind: "import" };
    }
    if (isId(tk, "export") && is(tokens[k + 1], "{")) {
      const close = match[k + 1];
      const spec = isId(tokens[close + 1], "from") ? stringAt(close + 2) : undefined;
      const target = spec === undefined ? undefined : classify(spec);
      for (let j = k + 2; j < close; j++) {
        if (!isId(tokens[j]) && tokens[j].t !== "str") continue;
        const local = tokens[j].t === "str" ? stringAt(j) : tokens[j].v;
        let exported = local;
        if (isId(tokens[j + 1], "as")) (exported = tokens[j + 2].t === "str" ? stringAt(j + 2) : tokens[j + 2].v), (j += 2);
        if (spec === undefined) result.exports[exported] = local;
        else if (target && target !== "crecipe") result.exports[exported] = { from: target.file, name: local };
      }
      return { kind: "export" };
    }
    if (isId(tk, "export") && is(tokens[k + 1], "*")) {
      const fromAt = tokens.slice(from, to + 1).findIndex((t) => isId(t, "from"));
      const target = fromAt < 0 ? null : classify(stringAt(from + fromAt + 1));
      if (target && target !== "crecipe") {
        if (isId(tokens[k + 2], "as")) result.exports[tokens[k + 3].v] = { from: target.file, name: "*" };
        else result.stars.push(target.file);
      }
      return { kind: "export" };
    }
    if (isId(tk, "export")) k++;
    if (isId(tokens[k], "default")) k++;
    const word = tokens[k];
    if (isId(word, "const") || isId(word, "let") || isId(word, "var")) {
      // esbuild's own `var`s (an enum, a default export) are not variables anyone assigns.
      const generated = word.v === "var" && (tokens[k + 3]?.t === "p" && body.slice(tokens[k + 2].e, tokens[k + 3].s).includes("@__PURE__"));
      return { kind: generated ? "const" : word.v, names: declaredNames(tokens, match, k + 1, to) };
    }
    if (isId(word, "async") && isId(tokens[k + 1], "function")) k++;
    if (isId(tokens[k], "function") || isId(tokens[k], "class")) {
      const name = tokens[k + 1] && is(tokens[k + 1], "*") ? tokens[k + 2] : tokens[k + 1];
      return { kind: tokens[k].v, names: isId(name) ? [name.v] : [] };
    }
    return { kind: "statement", names: [] };
  });
  // esbuild turns `export default EXPR` into a `var` nobody assigns.
  if (typeof result.exports.default === "string") {
    for (const d of declared) if (d.kind === "var" && d.names.includes(result.exports.default)) d.kind = "const";
  }
  const topNames = new Set(Object.keys(result.bindings));
  for (const d of declared) for (const name of d.names ?? []) topNames.add(name);
  for (const [name, local] of Object.entries(result.exports)) {
    if (typeof local === "string" && name === "default") topNames.add(local);
  }

  // Functions passed to crecipe's helpers: left out of what their statement means to others.
  const fnSpans = functions(tokens, match);
  const blanked = [];
  for (let k = 0; k < tokens.length; k++) {
    if (!isId(tokens[k]) || !crecipeNames.has(tokens[k].v) || !isReference(tokens, k)) continue;
    let j = k + 1;
    while (is(tokens[j], ".") && isId(tokens[j + 1])) j += 2;
    if (!is(tokens[j], "(") || match[j] < 0) continue;
    for (const [s, e] of fnSpans) if (s > j && e < match[j]) blanked.push([s, e]);
  }
  const inBlank = (k) => blanked.some(([s, e]) => k >= s && k <= e);
  const refsIn = (from, to, skipBlank) => {
    const refs = new Set();
    for (let k = from; k <= to; k++) {
      if (skipBlank && inBlank(k)) continue;
      if (isReference(tokens, k) && topNames.has(tokens[k].v)) refs.add(tokens[k].v);
    }
    return refs;
  };

  // Pass 2: each statement's text (blanks left out), line, and the top-level names it mentions.
  for (const [n, [from, to]] of spans.entries()) {
    const d = declared[n];
    if (d.kind === "import" || d.kind === "export") continue;
    let text = "";
    let at = tokens[from].s;
    for (const [s, e] of blanked) {
      if (s < from || e > to) continue;
      if (tokens[s].s < at) continue; // nested in a blank already counted
      text += body.slice(at, tokens[s].s) + "<builder>";
      at = tokens[e].e;
    }
    text += body.slice(at, tokens[to].e);
    const refs = refsIn(from, to, true);
    for (const name of d.names) refs.delete(name);
    const index = result.statements.length;
    const line = lines[tokens[from].line];
    result.statements.push({ names: d.names, kind: d.kind, line: line === undefined ? undefined : line + 1, hash: sha(text), refs: [...refs] });
    for (const name of d.names) result.bindings[name] = index;
  }
  // A statement that declares nothing (`CONFIG.x = 1`, a loop) counts for every name it mentions.
  for (const [index, statement] of result.statements.entries()) {
    if (statement.names.length) continue;
    for (const name of statement.refs) {
      const at = result.bindings[name];
      if (typeof at === "number") (result.statements[at].effects ??= []).push(index);
    }
  }

  for (const [s, e] of fnSpans) {
    const hash = sha(body.slice(tokens[s].s, tokens[e].e));
    const names = [...refsIn(s, e, false)];
    const seen = result.functions[hash];
    result.functions[hash] = seen ? [...new Set([...seen, ...names])] : names;
  }
  return result;
}

/**
 * An index of the analysed modules. `refs(text)` returns what a function with this text
 * (`fn.toString()`) can reach: [{ key, hash, name, file, line, kind }], sorted by key.
 */
export class SourceIndex {
  #modules = new Map();
  #functions;
  #closures = new Map();

  /** Add (or replace) a module's analysis. */
  add(file, analysis) {
    this.#modules.set(file, analysis);
    this.#functions = undefined;
    this.#closures.clear();
    this.#byText.clear();
  }

  get size() {
    return this.#modules.size;
  }

  refs(text) {
    if (this.#modules.size === 0) return [];
    // Targets made in a loop share their builder's text: hash and walk it once.
    let known = this.#byText.get(text);
    if (!known) this.#byText.set(text, (known = this.#refs(text)));
    return known;
  }

  #byText = new Map();

  #refs(text) {
    this.#functions ??= this.#indexFunctions();
    const found = this.#functions.get(sha(text));
    if (!found) return [];
    const reached = new Map();
    for (const [file, names] of found) {
      for (const name of names) {
        for (const ref of this.#closure(file, name)) reached.set(ref.key, ref);
      }
    }
    return [...reached.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  #indexFunctions() {
    const table = new Map();
    for (const [file, analysis] of this.#modules) {
      for (const [hash, names] of Object.entries(analysis.functions)) {
        if (!table.has(hash)) table.set(hash, []);
        table.get(hash).push([file, names]);
      }
    }
    return table;
  }

  /** The statements a top-level name of `file` reaches (itself included), memoized. */
  #closure(file, name) {
    const id = `${file}\0${name}`;
    let refs = this.#closures.get(id);
    if (refs) return refs;
    const reached = new Map();
    const work = [];
    const visit = (f, n) => {
      for (const [statementFile, index] of this.#resolve(f, n, new Set())) {
        const key = `${statementFile}\0${index}`;
        if (reached.has(key)) continue;
        const statement = this.#modules.get(statementFile).statements[index];
        reached.set(key, { statementFile, index, statement });
        work.push([statementFile, statement]);
      }
    };
    visit(file, name);
    while (work.length) {
      const [f, statement] = work.pop();
      for (const n of statement.refs) visit(f, n);
      for (const effect of statement.effects ?? []) {
        const key = `${f}\0${effect}`;
        if (reached.has(key)) continue;
        const other = this.#modules.get(f).statements[effect];
        reached.set(key, { statementFile: f, index: effect, statement: other });
        work.push([f, other]);
      }
    }
    refs = [...reached.values()].map(({ statementFile, statement }) => ({
      key: `${statementFile}#${statement.names[0] ?? `statement ${statement.hash.slice(0, 8)}`}`,
      name: statement.names.join(", ") || "a top-level statement",
      hash: statement.hash,
      file: statementFile,
      line: statement.line,
      kind: statement.kind,
    }));
    this.#closures.set(id, refs);
    return refs;
  }

  /** The statements (file, index) a name of `file` stands for: one, or a whole module's for a namespace. */
  #resolve(file, name, seen) {
    const analysis = this.#modules.get(file);
    if (!analysis || seen.has(`${file}\0${name}`)) return [];
    seen.add(`${file}\0${name}`);
    const binding = analysis.bindings[name];
    if (typeof binding === "number") return [[file, binding]];
    if (binding?.from) return this.#resolveExport(binding.from, binding.name, seen);
    return [];
  }

  #resolveExport(file, exported, seen) {
    const analysis = this.#modules.get(file);
    if (!analysis) return [];
    if (exported === "*") return analysis.statements.map((_, index) => [file, index]);
    const entry = analysis.exports[exported];
    if (typeof entry === "string") return this.#resolve(file, entry, seen);
    if (entry?.from) return this.#resolveExport(entry.from, entry.name, seen);
    for (const star of analysis.stars) {
      const found = this.#resolveExport(star, exported, seen);
      if (found.length) return found;
    }
    return [];
  }
}
