/**
 * Helpers for the format tests: a readable spelling of golden bytes, running host tools,
 * and reading an extracted tree back as raw bytes.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Entry } from "../../lib/formats/entry.ts";

/**
 * Golden bytes as text: printable ASCII stays literal (except `{`, `}`, `\`), `{N}` is N
 * zero bytes, anything else is `\xNN`. Headers are mostly text and zero runs, so this
 * keeps a 512-byte block to one reviewable line.
 */
export function toGolden(b: Buffer): string {
  let out = "";
  for (let i = 0; i < b.length; ) {
    if (b[i] === 0) {
      let j = i;
      while (j < b.length && b[j] === 0) j++;
      out += `{${j - i}}`;
      i = j;
      continue;
    }
    const c = b[i++];
    out += c >= 0x20 && c < 0x7f && !"{}\\".includes(String.fromCharCode(c)) ? String.fromCharCode(c) : "\\x" + c.toString(16).padStart(2, "0");
  }
  return out;
}

export function fromGolden(s: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    if (s[i] === "{") {
      const end = s.indexOf("}", i);
      bytes.push(...new Array(Number(s.slice(i + 1, end))).fill(0));
      i = end + 1;
    } else if (s[i] === "\\") {
      bytes.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 4;
    } else {
      bytes.push(s.charCodeAt(i++));
    }
  }
  return Buffer.from(bytes);
}

export const B = (s: string) => Buffer.from(s, "latin1");

export function tmpdir(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crecipe-formats-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs a command, returns stdout as bytes; throws with stderr when it fails. */
export function run(cmd: string, args: string[], options: { cwd?: string; input?: Buffer; allowFail?: boolean } = {}): Buffer {
  const r = spawnSync(cmd, args, { cwd: options.cwd, input: options.input, env: { ...process.env, TZ: "UTC", LC_ALL: "C" }, maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  if (r.status !== 0 && !options.allowFail) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr.toString()}`);
  }
  return r.stdout;
}

export interface Seen {
  type: Entry["type"];
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  ino: number;
  content?: Buffer;
  link?: Buffer;
  dev?: [number, number];
}

/** Every object under `root` keyed by its relative path in latin1 (one char per byte). */
export function walk(root: string): Map<string, Seen> {
  const seen = new Map<string, Seen>();
  const visit = (rel: Buffer) => {
    for (const name of fs.readdirSync(Buffer.concat([B(root + "/"), rel]), { encoding: "buffer" })) {
      const relPath = rel.length ? Buffer.concat([rel, B("/"), name]) : name;
      const abs = Buffer.concat([B(root + "/"), relPath]);
      const st = fs.lstatSync(abs);
      const type: Entry["type"] = st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink"
        : st.isFIFO() ? "fifo" : st.isCharacterDevice() ? "char" : st.isBlockDevice() ? "block" : ("unknown" as never);
      const s: Seen = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size, mtime: Math.floor(st.mtimeMs / 1000), ino: st.ino };
      if (type === "file") s.content = fs.readFileSync(abs);
      if (type === "symlink") s.link = fs.readlinkSync(abs, { encoding: "buffer" });
      if (type === "char" || type === "block") s.dev = [(st.rdev >> 8) & 0xfff, (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)];
      seen.set(relPath.toString("latin1"), s);
      if (type === "dir") visit(relPath);
    }
  };
  visit(Buffer.alloc(0));
  return seen;
}

/** `ls -l` style mode string, as GNU tar and cpio print it. */
export function lsMode(type: Entry["type"], mode: number): string {
  const t = { file: "-", whiteout: "-", hardlink: "h", dir: "d", symlink: "l", fifo: "p", char: "c", block: "b" }[type];
  const rwx = (bits: number, special: boolean, s: string) =>
    (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") + (special ? (bits & 1 ? s : s.toUpperCase()) : bits & 1 ? "x" : "-");
  return t + rwx(mode >> 6, (mode & 0o4000) !== 0, "s") + rwx(mode >> 3, (mode & 0o2000) !== 0, "s") + rwx(mode, (mode & 0o1000) !== 0, "t");
}

/** Undoes GNU's "escape" quoting style (C escapes and \ooo octal) back to raw bytes. */
export function unquoteEscape(s: Buffer): Buffer {
  const out: number[] = [];
  const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92, " ": 32, "?": 63 };
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== 0x5c) {
      out.push(s[i]);
      continue;
    }
    const next = String.fromCharCode(s[i + 1]);
    if (/[0-7]/.test(next)) {
      out.push(parseInt(s.subarray(i + 1, i + 4).toString("latin1"), 8));
      i += 3;
    } else if (next in simple) {
      out.push(simple[next]);
      i += 1;
    } else {
      throw new Error(`unknown escape \\${next} in ${JSON.stringify(s.toString("latin1"))}`);
    }
  }
  return Buffer.from(out);
}
