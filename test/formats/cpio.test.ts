import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { cpioArchive, cpioEntry, cpioPadding, cpioTrailer, sortItems } from "../../lib/formats/cpio.ts";
import { type Entry, FormatError } from "../../lib/formats/entry.ts";
import { B, fromGolden, lsMode, run, tmpdir, toGolden, walk } from "./tools.ts";

const MTIME = 1700000000;
type Item = { entry: Entry; content?: Buffer };

const e = (p: string, type: Entry["type"], mode: number, extra: Partial<Entry> = {}): Entry =>
  ({ path: B(p), type, mode, uid: 0, gid: 0, size: 0, ...extra });
const file = (p: string, mode: number, content: string, extra: Partial<Entry> = {}): Item =>
  ({ entry: e(p, "file", mode, { size: Buffer.byteLength(content, "latin1"), ...extra }), content: B(content) });

interface Member { fields: number[]; name: Buffer; data: Buffer; headerAt: number }
const FIELDS = ["ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check"];

/** Reads a newc archive up to and including its trailer, checking magic and alignment. */
function parse(archive: Buffer): { members: Member[]; end: number } {
  const members: Member[] = [];
  let at = 0;
  for (;;) {
    assert.equal(archive.subarray(at, at + 6).toString("latin1"), "070701", `magic at ${at}`);
    const fields = FIELDS.map((_, i) => parseInt(archive.subarray(at + 6 + 8 * i, at + 14 + 8 * i).toString("latin1"), 16));
    const [namesize, filesize] = [fields[11], fields[6]];
    const name = archive.subarray(at + 110, at + 110 + namesize - 1);
    assert.equal(archive[at + 110 + namesize - 1], 0, "name ends with NUL");
    const dataAt = at + 110 + namesize + ((4 - ((110 + namesize) % 4)) % 4);
    const data = archive.subarray(dataAt, dataAt + filesize);
    members.push({ fields, name, data, headerAt: at });
    at = dataAt + filesize + ((4 - (filesize % 4)) % 4);
    if (name.toString("latin1") === "TRAILER!!!") return { members, end: at };
  }
}

const GOLDEN_ITEMS: Item[] = [
  file("a", 0o644, "hello\n"),
  { entry: e("b", "hardlink", 0o644, { linkTarget: B("a") }) },
  { entry: e("d", "dir", 0o755) },
  { entry: e("d/s", "symlink", 0o777, { linkTarget: B("target") }) },
];
// Per member: "070701", then ino mode uid gid nlink mtime filesize devmajor devminor
// rdevmajor rdevminor namesize check as 8 hex digits each, then the name, NUL, padding, data.
// The pair a/b shares inode 1 and nlink 2; the data sits on b, the last link.
const GOLDEN = [
  "07070100000001000081A40000000000000000000000026553F10000000000000000000000000000000000000000000000000200000000a{1}",
  "07070100000001000081A40000000000000000000000026553F10000000006000000000000000000000000000000000000000200000000b{1}hello\\x0a{2}",
  "07070100000002000041ED0000000000000000000000026553F10000000000000000000000000000000000000000000000000200000000d{1}",
  "070701000000030000A1FF0000000000000000000000016553F10000000006000000000000000000000000000000000000000400000000d/s{3}target{2}",
  "07070100000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000B00000000TRAILER!!!{4}",
].join("");

test("newc golden bytes, identical to GNU cpio --reproducible but for inodes counting from 1", (t) => {
  const ours = cpioArchive(GOLDEN_ITEMS, MTIME);
  assert.equal(toGolden(ours), toGolden(fromGolden(GOLDEN)));
  assert.ok(cpioArchive(GOLDEN_ITEMS, MTIME).equals(ours), "two runs differ");

  const dir = tmpdir(t);
  fs.writeFileSync(path.join(dir, "a"), "hello\n");
  fs.chmodSync(path.join(dir, "a"), 0o644);
  fs.linkSync(path.join(dir, "a"), path.join(dir, "b"));
  fs.mkdirSync(path.join(dir, "d"));
  fs.chmodSync(path.join(dir, "d"), 0o755);
  fs.symlinkSync("target", path.join(dir, "d/s"));
  for (const p of ["a", "b", "d", "d/s"]) fs.lutimesSync(path.join(dir, p), MTIME, MTIME);
  const gnu = run("cpio", ["-o", "-0", "-H", "newc", "--reproducible", "-R", "0:0", "--quiet"], { cwd: dir, input: B("a\0b\0d\0d/s\0") });
  const { members, end } = parse(gnu);
  assert.ok(gnu.subarray(end).every((b) => b === 0), "GNU cpio pads with zeros only");
  // GNU's --reproducible numbers inodes from 0; ours from 1 (the trailer keeps 0).
  const shifted = Buffer.from(gnu.subarray(0, end));
  for (const m of members.slice(0, -1)) shifted.write((m.fields[0] + 1).toString(16).toUpperCase().padStart(8, "0"), m.headerAt + 6, "latin1");
  assert.equal(toGolden(shifted), toGolden(ours));
});

const TRICKY: Item[] = sortItems([
  { entry: e("dir with space", "dir", 0o755) },
  file("dir with space/file\nnewline", 0o644, "newline\n"),
  file("caf\xe9-latin1", 0o640, "not utf-8\n"),
  file("-leading-dash", 0o644, "dash\n"),
  { entry: e("c".repeat(150), "dir", 0o755) },
  { entry: e(`${"c".repeat(150)}/sub`, "dir", 0o2755) },
  file(`${"c".repeat(150)}/${"d".repeat(149)}`, 0o644, "300 bytes of path\n"),
  { entry: e("abs-link", "symlink", 0o777, { linkTarget: B("/etc/passwd") }) },
  { entry: e("dangling", "symlink", 0o777, { linkTarget: B("no/such/target") }) },
  { entry: e("long-link", "symlink", 0o777, { linkTarget: B("/" + "L".repeat(200)) }) },
  file("hl-a", 0o640, "shared by three names\n", { uid: 12, gid: 34 }),
  { entry: e("hl-b", "hardlink", 0o640, { linkTarget: B("hl-a"), uid: 12, gid: 34 }) },
  { entry: e("hl-c", "hardlink", 0o640, { linkTarget: B("hl-a"), uid: 12, gid: 34 }) },
  // Sorted by bytes, "z-link" comes before its target "z/target" ("-" < "/").
  { entry: e("z", "dir", 0o755) },
  file("z/target", 0o600, "linked before its target\n"),
  { entry: e("z-link", "hardlink", 0o600, { linkTarget: B("z/target") }) },
  { entry: e("empty-dir", "dir", 0o700) },
  { entry: e("sticky", "dir", 0o1777) },
  { entry: e("fifo", "fifo", 0o644) },
  { entry: e("null", "char", 0o666, { devMajor: 1, devMinor: 3 }) },
  { entry: e("loop0", "block", 0o660, { devMajor: 7, devMinor: 0, gid: 6 }) },
  file("setuid", 0o4755, "#!/bin/sh\n"),
  file("owned", 0o644, "mine\n", { uid: 300000, gid: 300001 }),
]);

/** What the inode behind an item looks like: a hard link is its target under another name. */
function resolve(item: Item): Item {
  if (item.entry.type !== "hardlink") return item;
  const target = TRICKY.find((i) => i.entry.path.equals(item.entry.linkTarget!))!;
  return { entry: { ...target.entry, path: item.entry.path }, content: target.content };
}

test("cpio -tv lists every tricky entry with modes, owners, links and hard-link counts", (t) => {
  const archive = cpioArchive(TRICKY, MTIME);
  const listing = run("cpio", ["-tvn", "--quiet"], { input: archive }).toString("latin1");
  // A name with a newline continues on the next line; a record starts with a mode string.
  const records: string[] = [];
  for (const line of listing.slice(0, -1).split("\n")) {
    if (/^[-dlpcb][-rwxsStT]{9} /.test(line)) records.push(line);
    else records[records.length - 1] += "\n" + line;
  }
  assert.equal(records.length, TRICKY.length, listing);
  TRICKY.forEach((item, i) => {
    const { entry, content } = resolve(item);
    const m = /^(\S{10}) +(\d+) (\d+) +(\d+) +(\d+, +\d+|\d+) (\w{3} [ \d]\d  \d{4}) ([^]*)$/.exec(records[i]);
    assert.ok(m, records[i]);
    const [, mode, nlink, uid, gid, size, date, rest] = m;
    const label = JSON.stringify(rest);
    assert.equal(mode, lsMode(entry.type, entry.mode), label);
    const links = entry.type === "dir" ? 2 + TRICKY.filter((o) => o.entry.type === "dir" && o.entry.path.toString("latin1").startsWith(entry.path.toString("latin1") + "/")).length
      : item.entry.path.toString().startsWith("hl-") ? 3 : ["z-link", "z/target"].includes(item.entry.path.toString()) ? 2 : 1;
    assert.equal(Number(nlink), links, label);
    assert.deepEqual([Number(uid), Number(gid)], [entry.uid, entry.gid], label);
    // newc stores a hard-linked file's data once, with the last link.
    const expectedSize = entry.type === "char" || entry.type === "block" ? `${entry.devMajor}, +${entry.devMinor}`
      : entry.type === "symlink" ? String(entry.linkTarget!.length)
      : ["hl-a", "hl-b", "z-link"].includes(item.entry.path.toString()) ? "0" : String(content?.length ?? 0);
    assert.match(size, new RegExp(`^${expectedSize}$`), label);
    assert.equal(date, "Nov 14  2023");
    const expectedName = entry.type === "symlink" ? Buffer.concat([entry.path, B(" -> "), entry.linkTarget!]) : entry.path;
    assert.deepEqual(B(rest), expectedName);
  });
});

function checkExtracted(out: string, { mtimes }: { mtimes: boolean }): void {
  const seen = walk(out);
  assert.deepEqual([...seen.keys()].sort(), TRICKY.map((i) => i.entry.path.toString("latin1")).sort());
  for (const item of TRICKY) {
    const { entry, content } = resolve(item);
    const got = seen.get(entry.path.toString("latin1"))!;
    const label = JSON.stringify(entry.path.toString("latin1"));
    assert.equal(got.type, entry.type, label);
    if (entry.type !== "symlink") assert.equal(got.mode, entry.mode, label);
    assert.deepEqual([got.uid, got.gid], [entry.uid, entry.gid], label);
    if (entry.type === "file") assert.deepEqual(got.content, content, label);
    if (entry.type === "symlink") assert.deepEqual(got.link, entry.linkTarget, label);
    if (entry.devMajor !== undefined) assert.deepEqual(got.dev, [entry.devMajor, entry.devMinor], label);
    // GNU cpio sets no symlink times, and sets a directory's before filling it.
    if (mtimes && entry.type !== "symlink" && entry.type !== "dir") assert.equal(got.mtime, MTIME, label);
  }
  const inodes = ["hl-a", "hl-b", "hl-c"].map((n) => seen.get(n)!.ino);
  assert.equal(new Set(inodes).size, 1, "the three hard links are one inode");
  assert.notEqual(seen.get("setuid")!.ino, inodes[0]);
  assert.equal(seen.get("z-link")!.ino, seen.get("z/target")!.ino, "a link listed before its target");
}

test("GNU cpio -idmu --no-absolute-filenames extracts tricky entries exactly, as root", (t) => {
  const out = tmpdir(t);
  run("cpio", ["-idmu", "--no-absolute-filenames", "--quiet"], { cwd: out, input: cpioArchive(TRICKY, MTIME) });
  checkExtracted(out, { mtimes: true });
});

test("busybox cpio extracts tricky entries exactly, as root", (t) => {
  const out = tmpdir(t);
  run("busybox", ["cpio", "-idmu"], { cwd: out, input: cpioArchive(TRICKY, MTIME) });
  checkExtracted(out, { mtimes: false });
});

test("cpioEntry pieces stream to the same bytes as cpioArchive", () => {
  const content = B("streamed data");
  const entry = e("big", "file", 0o644, { size: content.length });
  const streamed = Buffer.concat([cpioEntry(entry, 1, 1, MTIME), content, cpioPadding(content.length), cpioTrailer()]);
  assert.ok(streamed.equals(cpioArchive([{ entry, content }], MTIME)));
  assert.equal(cpioEntry(entry, 1, 1, MTIME).length % 4, 0, "header and name are padded to 4 bytes");
});

test("cpio refuses what newc cannot hold", () => {
  assert.throws(() => cpioArchive([{ entry: e(".wh.x", "whiteout", 0o644) }], MTIME), FormatError);
  assert.throws(() => cpioArchive([{ entry: e("x", "whiteout", 0o644) }], MTIME), /whiteout cannot be stored/);
  assert.throws(() => cpioArchive([{ entry: e("b", "hardlink", 0o644, { linkTarget: B("a") }) }], MTIME), /not a file in the archive/);
  const loop = [{ entry: e("a", "hardlink", 0o644, { linkTarget: B("b") }) }, { entry: e("b", "hardlink", 0o644, { linkTarget: B("a") }) }];
  assert.throws(() => cpioArchive(loop, MTIME), /not a file in the archive/);
  assert.throws(() => cpioArchive([file("a", 0o644, ""), file("a", 0o644, "")], MTIME), /appears twice/);
  assert.throws(() => cpioArchive([{ entry: e("d", "dir", 0o755) }, { entry: e("l", "hardlink", 0o755, { linkTarget: B("d") }) }], MTIME), /directory/);
  assert.throws(() => cpioArchive([{ entry: e("f", "file", 0o644, { size: 3 }) }], MTIME), /content is 0 bytes/);
  assert.throws(() => cpioArchive([file("f", 0o644, "x", { uid: 2 ** 32 })], MTIME), /does not fit/);
  assert.throws(() => cpioArchive([file("../f", 0o644, "x")], MTIME), /"\.\." component/);
  assert.throws(() => cpioArchive([file("/f", 0o644, "x")], MTIME), /absolute/);
  assert.throws(() => cpioEntry(e("f", "file", 0o644, { size: 2 }), 1, 1, MTIME, B("abc")), /content is 3 bytes/);
});
