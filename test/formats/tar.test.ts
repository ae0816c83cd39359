import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { createRequire } from "node:module";
import { type Entry, FormatError } from "../../lib/formats/entry.ts";
import { tarEnd, tarHeader, tarPadding } from "../../lib/formats/tar.ts";
import { B, fromGolden, lsMode, run, tmpdir, toGolden, unquoteEscape, walk } from "./tools.ts";

const tarStream = createRequire(import.meta.url)("tar-stream");
const MTIME = 1700000000; // 2023-11-14 22:13:20 UTC

type Item = { entry: Entry; content?: Buffer };

function archive(items: Item[], mtime = MTIME): Buffer {
  const parts: Buffer[] = [];
  for (const { entry, content } of items) {
    parts.push(tarHeader(entry, mtime));
    if (content) parts.push(content, tarPadding(content.length));
  }
  return Buffer.concat([...parts, tarEnd()]);
}

const e = (p: string, type: Entry["type"], mode: number, extra: Partial<Entry> = {}): Entry =>
  ({ path: B(p), type, mode, uid: 0, gid: 0, size: 0, ...extra });
const file = (p: string, mode: number, content: string, extra: Partial<Entry> = {}): Item =>
  ({ entry: e(p, "file", mode, { size: Buffer.byteLength(content, "latin1"), ...extra }), content: B(content) });

/** Makes the same objects on disk, so GNU tar can archive them for comparison. */
function materialize(dir: string, items: Item[]): void {
  for (const { entry, content } of items) {
    const p = Buffer.concat([B(dir + "/"), entry.path]);
    if (entry.type === "file") fs.writeFileSync(p, content ?? "");
    if (entry.type === "dir") fs.mkdirSync(p);
    if (entry.type === "symlink") fs.symlinkSync(entry.linkTarget!, p);
    if (entry.type === "hardlink") fs.linkSync(Buffer.concat([B(dir + "/"), entry.linkTarget!]), p);
    if (entry.type !== "symlink" && entry.type !== "hardlink") fs.chmodSync(p, entry.mode);
  }
  for (const { entry } of items) fs.lutimesSync(Buffer.concat([B(dir + "/"), entry.path]), MTIME, MTIME);
}

/** GNU tar's archive of the same objects, cut to our length after checking the rest is zeros. */
function gnuTar(t: Parameters<typeof tmpdir>[0], items: Item[], format: string[], length: number): Buffer {
  const dir = tmpdir(t);
  materialize(dir, items);
  const names = items.map((i) => i.entry.path.toString("latin1"));
  const out = run("tar", [...format, "--numeric-owner", "--owner=0", "--group=0", `--mtime=@${MTIME}`, "--no-recursion", "-cf", "-", ...names], { cwd: dir });
  assert.ok(out.subarray(length).every((b) => b === 0), "GNU tar wrote more than zero padding after our length");
  return out.subarray(0, length);
}

const SPLIT = `${"p".repeat(60)}/${"q".repeat(60)}/${"r".repeat(60)}`;
const USTAR_ITEMS: Item[] = [
  file("a.txt", 0o644, "hello\n"),
  { entry: e("b", "hardlink", 0o644, { linkTarget: B("a.txt") }) },
  { entry: e("d", "dir", 0o755) },
  { entry: e("d/s", "symlink", 0o777, { linkTarget: B("/etc/passwd") }) },
  { entry: e("p".repeat(60), "dir", 0o755) },
  { entry: e(`${"p".repeat(60)}/${"q".repeat(60)}`, "dir", 0o755) },
  file(SPLIT, 0o600, ""),
];
const USTAR_GOLDEN = [
  "a.txt{95}0000644{1}0000000{1}0000000{1}00000000006{1}14524770400{1}010224{1} 0{100}ustar{1}00{64}0000000{1}0000000{168}",
  "hello\\x0a{506}",
  "b{99}0000644{1}0000000{1}0000000{1}00000000000{1}14524770400{1}010361{1} 1a.txt{95}ustar{1}00{64}0000000{1}0000000{168}",
  "d/{98}0000755{1}0000000{1}0000000{1}00000000000{1}14524770400{1}007472{1} 5{100}ustar{1}00{64}0000000{1}0000000{168}",
  "d/s{97}0000777{1}0000000{1}0000000{1}00000000000{1}14524770400{1}011732{1} 2/etc/passwd{89}ustar{1}00{64}0000000{1}0000000{168}",
  `${"p".repeat(60)}/{39}0000755{1}0000000{1}0000000{1}00000000000{1}14524770400{1}024426{1} 5{100}ustar{1}00{64}0000000{1}0000000{168}`,
  `${"q".repeat(60)}/{39}0000755{1}0000000{1}0000000{1}00000000000{1}14524770400{1}041622{1} 5{100}ustar{1}00{64}0000000{1}0000000{1}${"p".repeat(60)}{107}`,
  `${"r".repeat(60)}{40}0000600{1}0000000{1}0000000{1}00000000000{1}14524770400{1}057072{1} 0{100}ustar{1}00{64}0000000{1}0000000{1}${"p".repeat(60)}/${"q".repeat(60)}{46}`,
  "{1024}",
].join("");

test("ustar golden bytes, identical to GNU tar --format=ustar", (t) => {
  const ours = archive(USTAR_ITEMS);
  assert.equal(toGolden(ours), toGolden(fromGolden(USTAR_GOLDEN)));
  assert.ok(gnuTar(t, USTAR_ITEMS, ["--format=ustar"], ours.length).equals(ours), "differs from GNU tar");
  assert.ok(archive(USTAR_ITEMS).equals(ours), "two runs differ");
});

const LONG = "x".repeat(120);
const PAX_ITEMS: Item[] = [
  file(LONG, 0o644, "hi"),
  { entry: e("ln", "symlink", 0o777, { linkTarget: B("/" + "y".repeat(110)) }) },
  { entry: e("c".repeat(150), "dir", 0o755) },
  file(`${"c".repeat(150)}/${"d".repeat(149)}`, 0o600, "x\n"),
];
const PAX_GOLDEN = [
  `PaxHeaders/${"x".repeat(89)}0000644{1}0000000{1}0000000{1}00000000202{1}14524770400{1}035027{1} x{100}ustar{1}00{247}`,
  `130 path=${"x".repeat(120)}\\x0a{382}`,
  `${"x".repeat(100)}0000644{1}0000000{1}0000000{1}00000000002{1}14524770400{1}036601{1} 0{100}ustar{1}00{64}0000000{1}0000000{168}`,
  "hi{510}",
  "PaxHeaders/ln{87}0000644{1}0000000{1}0000000{1}00000000175{1}14524770400{1}010502{1} x{100}ustar{1}00{247}",
  `125 linkpath=/${"y".repeat(110)}\\x0a{387}`,
  `ln{98}0000777{1}0000000{1}0000000{1}00000000000{1}14524770400{1}037174{1} 2/${"y".repeat(99)}ustar{1}00{64}0000000{1}0000000{168}`,
  `PaxHeaders/${"c".repeat(89)}0000644{1}0000000{1}0000000{1}00000000241{1}14524770400{1}031315{1} x{100}ustar{1}00{247}`,
  `161 path=${"c".repeat(150)}/\\x0a{351}`,
  `${"c".repeat(100)}0000755{1}0000000{1}0000000{1}00000000000{1}14524770400{1}032523{1} 5{100}ustar{1}00{64}0000000{1}0000000{168}`,
  `PaxHeaders/${"d".repeat(89)}0000644{1}0000000{1}0000000{1}00000000466{1}14524770400{1}031457{1} x{100}ustar{1}00{247}`,
  `310 path=${"c".repeat(150)}/${"d".repeat(149)}\\x0a{202}`,
  `${"c".repeat(100)}0000600{1}0000000{1}0000000{1}00000000002{1}14524770400{1}032505{1} 0{100}ustar{1}00{64}0000000{1}0000000{168}`,
  "x\\x0a{510}",
  "{1024}",
].join("");

test("pax golden bytes, identical to GNU tar --format=posix", (t) => {
  const ours = archive(PAX_ITEMS);
  assert.equal(toGolden(ours), toGolden(fromGolden(PAX_GOLDEN)));
  const posix = ["--format=posix", "--pax-option=exthdr.name=PaxHeaders/%f,delete=atime,delete=ctime"];
  assert.ok(gnuTar(t, PAX_ITEMS, posix, ours.length).equals(ours), "differs from GNU tar");
});

const NULL_DEV = { devMajor: 1, devMinor: 3 };
// security.capability v2 granting cap_net_raw (bit 13), effective: what `setcap cap_net_raw=ep` writes.
const CAP = Buffer.from("0100000200200000000000000000000000000000", "hex");
const TRICKY: Item[] = [
  { entry: e("dir with space", "dir", 0o755) },
  file("dir with space/file\nnewline", 0o644, "newline\n"),
  { entry: e("dir with space/.wh.gone", "whiteout", 0o644) },
  file("caf\xe9-latin1", 0o640, "not utf-8\n"),
  file("-leading-dash", 0o644, "dash\n"),
  { entry: e("c".repeat(150), "dir", 0o755) },
  file(`${"c".repeat(150)}/${"d".repeat(149)}`, 0o644, "300 bytes of path\n"),
  { entry: e("abs-link", "symlink", 0o777, { linkTarget: B("/etc/passwd") }) },
  { entry: e("dangling", "symlink", 0o777, { linkTarget: B("no/such/target") }) },
  { entry: e("long-link", "symlink", 0o777, { linkTarget: B("/" + "L".repeat(200)) }) },
  file("hl-a", 0o644, "shared\n"),
  { entry: e("hl-b", "hardlink", 0o644, { linkTarget: B("hl-a") }) },
  { entry: e("empty-dir", "dir", 0o700) },
  { entry: e("sticky", "dir", 0o1777) },
  { entry: e("fifo", "fifo", 0o644) },
  { entry: e("null", "char", 0o666, NULL_DEV) },
  file("setuid", 0o4755, "#!/bin/sh\n"),
  file("owned", 0o644, "mine\n", { uid: 300000, gid: 300001 }),
  file("cap", 0o755, "ping\n", { xattrs: { "user.note": B("hello"), "security.capability": CAP } }),
];

/** What an extracted tree should hold: whiteouts are plain empty files, hard links files. */
function expectedTree(items: Item[]) {
  return new Map(items.map(({ entry, content }) => {
    const type = entry.type === "whiteout" || entry.type === "hardlink" ? "file" : entry.type;
    const target = entry.type === "hardlink" ? items.find((i) => i.entry.path.equals(entry.linkTarget!))! : { entry, content };
    return [entry.path.toString("latin1"), { ...target.entry, type, content: target.content ?? (type === "file" ? B("") : undefined) }];
  }));
}

test("GNU tar lists and extracts tricky entries exactly", (t) => {
  const dir = tmpdir(t);
  const tarPath = path.join(dir, "tricky.tar");
  fs.writeFileSync(tarPath, archive(TRICKY));

  // Listing: every name (as bytes), type, mode, owner, size, time and link, in order.
  const listing = run("tar", ["--numeric-owner", "--quoting-style=escape", "--xattrs", "--xattrs-include=*", "-tvvf", tarPath]).toString("latin1");
  const lines = listing.split("\n").filter(Boolean);
  const rows: { line: string; xattrs: string[] }[] = [];
  for (const line of lines) {
    if (line.startsWith("  x: ")) rows.at(-1)!.xattrs.push(line.trim());
    else rows.push({ line, xattrs: [] });
  }
  assert.equal(rows.length, TRICKY.length, listing);
  TRICKY.forEach(({ entry }, i) => {
    const m = /^(\S{10})([ *]) (\d+)\/(\d+) +(\S+) (\S+ \S+) (.*)$/.exec(rows[i].line);
    assert.ok(m, rows[i].line);
    const [, mode, star, uid, gid, size, date, rest] = m;
    const type = entry.type === "whiteout" ? "file" : entry.type;
    assert.equal(mode, lsMode(type, entry.mode), rows[i].line);
    assert.equal(`${uid}/${gid}`, `${entry.uid}/${entry.gid}`);
    assert.equal(size, entry.type === "char" ? "1,3" : String(entry.size));
    assert.equal(date, "2023-11-14 22:13");
    const sep = entry.type === "symlink" ? " -> " : entry.type === "hardlink" ? " link to " : undefined;
    const [name, link] = sep ? rest.split(sep) : [rest];
    const expectedName = entry.type === "dir" ? Buffer.concat([entry.path, B("/")]) : entry.path;
    assert.deepEqual(unquoteEscape(B(name)), expectedName);
    if (sep) assert.deepEqual(unquoteEscape(B(link)), entry.linkTarget);
    assert.equal(star, entry.xattrs ? "*" : " ", "GNU marks entries with xattrs");
    assert.deepEqual(rows[i].xattrs, Object.keys(entry.xattrs ?? {}).sort().map((k) => `x: ${entry.xattrs![k].length} ${k}`));
  });

  // Extraction as root: the tree on disk is exactly the entries.
  const out = path.join(dir, "out");
  fs.mkdirSync(out);
  run("tar", ["--numeric-owner", "--same-owner", "-p", "--xattrs", "--xattrs-include=*", "-xf", tarPath, "-C", out]);
  const seen = walk(out);
  const expected = expectedTree(TRICKY);
  assert.deepEqual([...seen.keys()].sort(), [...expected.keys()].sort());
  for (const [key, want] of expected) {
    const got = seen.get(key)!;
    const label = JSON.stringify(key);
    assert.equal(got.type, want.type, label);
    if (want.type !== "symlink") assert.equal(got.mode, want.mode, label);
    assert.deepEqual([got.uid, got.gid], [want.uid, want.gid], label);
    assert.equal(got.mtime, MTIME, label);
    if (want.type === "file") assert.deepEqual(got.content, want.content, label);
    if (want.type === "symlink") assert.deepEqual(got.link, want.linkTarget, label);
    if (want.type === "char") assert.deepEqual(got.dev, [1, 3], label);
  }
  assert.equal(seen.get("hl-a")!.ino, seen.get("hl-b")!.ino, "hard link pair is one inode");
  assert.equal(run("getcap", [path.join(out, "cap")]).toString().trim(), `${path.join(out, "cap")} cap_net_raw=ep`);
});

test("tar-stream extracts tricky entries exactly", async () => {
  const seen: { name: Buffer; type: string; mode: number; uid: number; gid: number; size: number; link?: Buffer; data: Buffer; pax: Record<string, string> | null; dev: number[] }[] = [];
  const extract = tarStream.extract({ filenameEncoding: "latin1" });
  // ustar fields decode as latin1 (one char per byte); pax values always decode as UTF-8.
  const bytes = (s: string, fromPax: boolean) => Buffer.from(s, fromPax ? "utf8" : "latin1");
  extract.on("entry", (h: any, stream: any, next: () => void) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      seen.push({
        name: bytes(h.name, Boolean(h.pax?.path)), type: h.type, mode: h.mode, uid: h.uid, gid: h.gid, size: h.size,
        link: h.linkname === null ? undefined : bytes(h.linkname, Boolean(h.pax?.linkpath)),
        data: Buffer.concat(chunks), pax: h.pax, dev: [h.devmajor, h.devminor],
      });
      next();
    });
  });
  const done = new Promise((resolve, reject) => extract.on("finish", resolve).on("error", reject));
  extract.end(archive(TRICKY));
  await done;

  const TYPES: Record<string, string> = { file: "file", whiteout: "file", hardlink: "link", symlink: "symlink", dir: "directory", fifo: "fifo", char: "character-device" };
  assert.equal(seen.length, TRICKY.length);
  TRICKY.forEach(({ entry, content }, i) => {
    const got = seen[i];
    const label = JSON.stringify(entry.path.toString("latin1"));
    assert.deepEqual(got.name, entry.type === "dir" ? Buffer.concat([entry.path, B("/")]) : entry.path, label);
    assert.equal(got.type, TYPES[entry.type], label);
    assert.equal(got.mode, entry.mode, label);
    assert.deepEqual([got.uid, got.gid], [entry.uid, entry.gid], label);
    assert.deepEqual(got.data, content ?? B(""), label);
    assert.deepEqual(got.link, entry.linkTarget, label);
    if (entry.type === "char") assert.deepEqual(got.dev, [1, 3]);
    if (entry.xattrs) assert.equal(got.pax?.["SCHILY.xattr.user.note"], "hello");
  });
});

test("non-UTF-8 names too long for ustar go to pax with hdrcharset=BINARY", (t) => {
  const name = Buffer.concat([B("\xff"), B("z".repeat(120))]);
  const target = Buffer.concat([B("/\xfe"), B("t".repeat(120))]);
  const items: Item[] = [
    { entry: { path: name, type: "file", mode: 0o644, uid: 0, gid: 0, size: 3 }, content: B("raw") },
    { entry: { path: B("bin-link"), type: "symlink", mode: 0o777, uid: 0, gid: 0, size: 0, linkTarget: target } },
  ];
  const tar = archive(items);
  const paxBody = tar.subarray(512, 1024);
  assert.ok(paxBody.subarray(0, 21).equals(B("21 hdrcharset=BINARY\n")), "hdrcharset comes first");
  assert.ok(paxBody.includes(Buffer.concat([B("131 path="), name, B("\n")])), "raw path record");

  const dir = tmpdir(t);
  fs.writeFileSync(path.join(dir, "x.tar"), tar);
  const listing = run("tar", ["--quoting-style=escape", "-tf", path.join(dir, "x.tar")]).toString("latin1").split("\n");
  assert.deepEqual(unquoteEscape(B(listing[0])), name);
  fs.mkdirSync(path.join(dir, "out"));
  run("tar", ["-xf", path.join(dir, "x.tar"), "-C", path.join(dir, "out")]);
  const seen = walk(path.join(dir, "out"));
  assert.deepEqual(seen.get(name.toString("latin1"))?.content, B("raw"));
  assert.deepEqual(seen.get("bin-link")?.link, target);
});

test("ids and sizes beyond ustar's octal fields go to pax, ustar fields clamp", (t) => {
  const big: Entry = { path: B("big-owner"), type: "file", mode: 0o644, uid: 3000000, gid: 4000000, size: 1 };
  const header = tarHeader(big, MTIME);
  assert.equal(header.length, 1536);
  assert.ok(header.subarray(512, 1024).includes(B("15 uid=3000000\n15 gid=4000000\n")), "uid and gid records");
  assert.equal(header.subarray(1024 + 108, 1024 + 124).toString("latin1"), "7777777\x007777777\x00");

  const dir = tmpdir(t);
  fs.writeFileSync(path.join(dir, "x.tar"), Buffer.concat([header, B("!"), tarPadding(1), tarEnd()]));
  assert.match(run("tar", ["--numeric-owner", "-tvf", path.join(dir, "x.tar")]).toString(), /^-rw-r--r-- 3000000\/4000000 +1 /);
  fs.mkdirSync(path.join(dir, "out"));
  run("tar", ["--numeric-owner", "-xf", path.join(dir, "x.tar"), "-C", path.join(dir, "out")]);
  const st = fs.statSync(path.join(dir, "out", "big-owner"));
  assert.deepEqual([st.uid, st.gid], [3000000, 4000000]);

  // 8 GiB + 1 does not fit 11 octal digits; GNU tar must read the size from pax (the data
  // is absent, so it lists the entry and then reports the truncation).
  const huge = tarHeader({ path: B("huge"), type: "file", mode: 0o644, uid: 0, gid: 0, size: 2 ** 33 + 1 }, MTIME);
  assert.ok(huge.includes(B("19 size=8589934593\n")), "size record");
  fs.writeFileSync(path.join(dir, "huge.tar"), huge);
  assert.match(run("tar", ["--numeric-owner", "-tvf", path.join(dir, "huge.tar")], { allowFail: true }).toString(), /0\/0 +8589934593 .* huge\n/);
});

test("tarHeader refuses paths that could escape the root, allows whiteout names", () => {
  const bad = ["/etc/passwd", "a/../b", "..", "a/./b", "a//b", "a/", "", "a\0b"];
  for (const p of bad) assert.throws(() => tarHeader(e(p, "file", 0o644), MTIME), FormatError, JSON.stringify(p));
  assert.throws(() => tarHeader(e("l", "hardlink", 0o644, { linkTarget: B("../x") }), MTIME), FormatError);
  assert.throws(() => tarHeader(e("l", "symlink", 0o777), MTIME), FormatError);
  assert.throws(() => tarHeader(e("d/gone", "whiteout", 0o644), MTIME), /must be named \.wh\.NAME/);
  assert.throws(() => tarHeader(e("f", "file", 0o100644), MTIME), /mode/);
  assert.throws(() => tarHeader(e("f", "file", 0o644), -1), /mtime/);
  assert.throws(() => tarHeader(e("f", "file", 0o644, { xattrs: { "a=b": B("") } }), MTIME), /xattr/);
  assert.throws(() => tarHeader(e("a/\n/../b", "file", 0o644), MTIME), /"a\/\\x0a\/\.\.\/b"/, "error shows the path escaped");
  tarHeader(e("d/.wh.gone", "whiteout", 0o644), MTIME);
  tarHeader(e("d/.wh..wh..opq", "whiteout", 0o644), MTIME);
  const wh = tarHeader(e("d/.wh.gone", "whiteout", 0o600), MTIME);
  assert.equal(wh[156], 0x30, "a whiteout is a regular file");
  assert.equal(wh.subarray(124, 136).toString("latin1"), "00000000000\0");
});

test("padding and end marker", () => {
  assert.equal(tarPadding(0).length, 0);
  assert.equal(tarPadding(1).length, 511);
  assert.equal(tarPadding(512).length, 0);
  assert.equal(tarPadding(1000).length, 24);
  assert.ok(tarEnd().equals(Buffer.alloc(1024)));
});
