import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { type Entry, FormatError } from "../../lib/formats/entry.ts";
import { diffList, escapePath, formatList, parseList, unescapePath } from "../../lib/formats/filelist.ts";
import { B, run } from "./tools.ts";

const sha = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");
const e = (p: string | Buffer, type: Entry["type"], mode: number, extra: Partial<Entry> = {}): Entry =>
  ({ path: typeof p === "string" ? B(p) : p, type, mode, uid: 0, gid: 0, size: 0, ...extra });

const EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const TARGET = "34a04005bcaf206eec990bd9637d9fdb6725e0a0c0d4aebf003f17f4c956eb5c";
const HI = "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4";

const GOLDEN_ENTRIES: Entry[] = [
  e("x\ny\xff", "file", 0o4755, { uid: 1000, gid: 1001, size: 3, hash: HI, xattrs: { "user.b": B("\x00\xff"), "security.capability": B("") } }),
  e("hl", "hardlink", 0o644, { linkTarget: B("-dash") }),
  e("a b/l", "symlink", 0o777, { linkTarget: B("target"), hash: TARGET }),
  e("dev", "char", 0o666, { devMajor: 1, devMinor: 3 }),
  e("-dash", "file", 0o644, { hash: EMPTY }),
  e("a b", "dir", 0o755),
  e("a b/p", "fifo", 0o600),
  e("back\\slash", "symlink", 0o777, { linkTarget: B("-"), hash: sha("-") }),
];
const GOLDEN = [
  `-dash file 0644 0:0 0 ${EMPTY} -`,
  "a\\x20b dir 0755 0:0 0 - -",
  `a\\x20b/l symlink 0777 0:0 0 ${TARGET} target`,
  "a\\x20b/p fifo 0600 0:0 0 - -",
  `back\\x5cslash symlink 0777 0:0 0 ${sha("-")} -`,
  "dev char 0666 0:0 0 1,3 -",
  "gone deleted - - - - -",
  "hl hardlink 0644 0:0 0 - -dash",
  `x\\x0ay\\xff file 4755 1000:1001 3 ${HI} - security.capability= user.b=00ff`,
  "",
].join("\n");

test("golden list text", () => {
  assert.equal(formatList(GOLDEN_ENTRIES, [B("gone")]), GOLDEN);
  assert.equal(formatList(GOLDEN_ENTRIES.toReversed(), [B("gone")]), GOLDEN, "order of input does not matter");
  // The hashes are what sha256sum says, and the escapes mean what printf %b says.
  assert.equal(run("sha256sum", [], { input: B("hi\n") }).toString().split(" ")[0], HI);
  for (const line of GOLDEN.trimEnd().split("\n")) {
    const field = line.split(" ")[0];
    assert.deepEqual(run("bash", ["-c", 'printf "%b" "$1"', "-", field]), unescapePath(field), field);
  }
});

test("parseList inverts formatList, field for field", () => {
  const { entries, deletions } = parseList(GOLDEN);
  assert.deepEqual(deletions, [B("gone")]);
  const sorted = [...GOLDEN_ENTRIES].sort((a, b) => Buffer.compare(a.path, b.path));
  assert.deepEqual(entries, sorted);
  assert.equal(formatList(entries, deletions), GOLDEN);
});

test("every byte but NUL and / round-trips in names and link targets", () => {
  const entries: Entry[] = [];
  for (let b = 1; b < 256; b++) {
    if (b === 0x2f) continue;
    const name = Buffer.from([0x6e, b, 0x6d]); // n<b>m
    entries.push(e(name, "symlink", 0o777, { linkTarget: Buffer.from([b, 0x2f, b]), hash: sha(Buffer.from([b])) }));
    entries.push(e(Buffer.concat([B("d/"), name]), "file", 0o644, { size: 1, hash: sha(name) }));
  }
  const tricky = ["dir with space/file\nnewline", "caf\xe9-latin1", "-leading-dash", `${"c".repeat(150)}/${"d".repeat(149)}`, " ", "\\", "\\x41", "-"];
  for (const p of tricky) entries.push(e(p, "dir", 0o755));
  const text = formatList(entries);
  for (const line of text.trimEnd().split("\n")) {
    assert.match(line, /^[\x21-\x7e]+( [\x21-\x7e]+){6}$/, "printable ASCII fields, single spaces");
  }
  const back = parseList(text).entries;
  assert.equal(back.length, entries.length);
  assert.deepEqual(back, [...entries].sort((a, b) => Buffer.compare(a.path, b.path)));
  assert.equal(escapePath(B("\\x41")), "\\x5cx41", "a literal backslash is escaped");
});

test("parseList rejects what formatList never writes", () => {
  const line = `f file 0644 0:0 0 ${EMPTY} -`;
  const bad: [string, RegExp][] = [
    [`${line}`, /does not end with a newline/],
    [`${line}\n${line}\n`, /line 2: .*out of order or repeated/],
    [`g file 0644 0:0 0 - -\nf file 0644 0:0 0 - -\n`, /line 2: "f" is out of order/],
    [`f file 0644 0:0 0 -\n`, /at least 7/],
    [`f\\q file 0644 0:0 0 - -\n`, /bad escape/],
    [`f\\x4 file 0644 0:0 0 - -\n`, /bad escape/],
    [`f file 755 0:0 0 - -\n`, /4 octal digits/],
    [`f file 0644 0 0 - -\n`, /uid:gid/],
    [`f file 0644 0:0 -1 - -\n`, /size/],
    [`f file 0644 0:0 0 abc -\n`, /sha256/],
    [`f socket 0644 0:0 0 - -\n`, /unknown type/],
    [`f dir 0755 0:0 0 - target\n`, /no link target/],
    [`f char 0644 0:0 0 - -\n`, /major,minor/],
    [`f deleted 0644 - - - -\n`, /"-" in every other field/],
    [`a/../b file 0644 0:0 0 - -\n`, /line 1: invalid path "a\/\.\.\/b": "\.\." component/],
    [`.wh.x file 0644 0:0 0 - -\n`, /reserved for whiteouts/],
    [`f file 0644 0:0 0 - - user.x=zz\n`, /NAME=HEX/],
  ];
  for (const [text, message] of bad) assert.throws(() => parseList(text), message, JSON.stringify(text));
  assert.deepEqual(parseList(""), { entries: [], deletions: [] });
});

test("formatList rejects entries it could not read back", () => {
  assert.throws(() => formatList([e("f", "file", 0o644), e("f", "dir", 0o755)]), /listed twice/);
  assert.throws(() => formatList([e("f", "file", 0o644)], [B("f")]), /listed twice/);
  assert.throws(() => formatList([e("/f", "file", 0o644)]), FormatError);
  assert.throws(() => formatList([e("f", "file", 0o100644)]), /mode/);
  assert.throws(() => formatList([e("f", "file", 0o644, { hash: "sha256:abc" })]), /sha256 hex/);
  assert.throws(() => formatList([e("l", "symlink", 0o777)]), /link target missing/);
  assert.throws(() => formatList([e("c", "char", 0o666)]), /device numbers/);
});

test("diffList: new, changed in any field, deleted, and one deletion per deleted subtree", () => {
  const f = (p: string, extra: Partial<Entry> = {}) => e(p, "file", 0o644, { hash: EMPTY, ...extra });
  const base: Entry[] = [
    f("same"), f("mode"), f("owner"), f("content"), f("hash"), f("caps"),
    e("link", "symlink", 0o777, { linkTarget: B("old"), hash: sha("old") }),
    e("d", "dir", 0o755), f("d/x"), e("d/y", "dir", 0o755), f("d/y/z"),
    f("d-sibling"),
    e("keep", "dir", 0o755), f("keep/gone"),
    e("was-dir", "dir", 0o755), f("was-dir/child"),
  ];
  const current: Entry[] = [
    f("same"), f("mode", { mode: 0o600 }), f("owner", { uid: 1 }), f("content", { size: 3, hash: HI }), f("hash", { hash: HI }),
    f("caps", { xattrs: { "security.capability": B("\x01") } }),
    e("link", "symlink", 0o777, { linkTarget: B("new"), hash: sha("new") }),
    f("d-sibling"),
    e("keep", "dir", 0o755),
    f("was-dir"),
    f("new"),
  ];
  const { changed, deleted } = diffList(base, current);
  assert.deepEqual(changed.map((c) => c.path.toString()), ["caps", "content", "hash", "link", "mode", "new", "owner", "was-dir"]);
  assert.deepEqual(deleted.map((d) => d.toString()), ["d", "keep/gone", "was-dir/child"]);
  assert.deepEqual(diffList(base, base), { changed: [], deleted: [] });

  const text = formatList(changed, deleted);
  assert.match(text, /^d deleted - - - - -$/m);
  assert.deepEqual(parseList(text), { entries: changed, deletions: deleted });
});
