/**
 * run.kvm under qemu (TCG here): success, exit codes, a missing /init, a hang, too little
 * memory, an unprivileged user; and the initrd itself read back by GNU cpio.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { crecipe, modUrl, tempDir, write, hasTestUser, NEEDS_TEST_USER, crecipeAsTestUser } from "../helpers.ts";

const haveQemu = spawnSync("sh", ["-c", "command -v qemu-system-x86_64 && ls /boot/vmlinuz-*"]).status === 0;
const skip = haveQemu ? false : "qemu-system-x86 or a kernel in /boot is missing (scripts/setup.sh installs them)";

/** A static busybox tree whose /init is the given shell script. */
const recipe = `
import { fs, initrd, run } from ${JSON.stringify(modUrl)};
const tree = (name: string, script: string | null) => fs(name, async (root) => {
  await root.copyIn("/bin/busybox", "/bin/");
  await root.symlink("busybox", "/bin/sh");
  if (script !== null) await root.write("/init", "#!/bin/sh\\n" + script + "\\n", 0o755);
});
export const ok = run.kvm(tree("ok", "echo hello from the guest; echo to stderr >&2"));
export const three = run.kvm(tree("three", "echo partial; exit 3"));
export const noInit = run.kvm(tree("noinit", null));
export const hang = run.kvm(tree("hang", "while :; do :; done"), { timeout: 8 });
export const small = run.kvm(tree("small", "echo hi"), { memory: 24 });
export const okInitrd = initrd("ok");
// 96 MiB of zeros: a gzipped initrd of a few hundred kB that unpacks to more than the
// memory its own size would ask for.
export const gzipped = run.kvm(fs("gzipped", async (root) => {
  await root.copyIn("/bin/busybox", "/bin/");
  await root.symlink("busybox", "/bin/sh");
  await root.write("/zeros", Buffer.alloc(96 << 20));
  await root.write("/init", "#!/bin/sh\\nwc -c < /zeros\\n", 0o755);
}), { gzip: true });
`;

describe("run.kvm", { skip }, () => {
  const dir = tempDir();
  write(dir, "r.ts", recipe);

  it("prints what /init wrote, CR stripped, and stays up to date", () => {
    const r = crecipe(dir, ["r.ts", "ok"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(dir, "out/ok.runkvm"), "utf8"), "hello from the guest\n");
    assert.match(fs.readFileSync(path.join(dir, "out/.crecipe/log/ok.runkvm.log"), "utf8"), /to stderr/, "stderr goes to the console, kept in the log");
    assert.match(crecipe(dir, ["r.ts", "ok"]).stderr, /0 built/);
  });

  it("a nonzero exit of /init fails the target with that code", () => {
    const r = crecipe(dir, ["r.ts", "three"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /FAILED three\.runkvm: .*exit code 3/);
    assert.match(r.stderr, /exit code: 3/);
    assert.equal(fs.existsSync(path.join(dir, "out/three.runkvm")), false);
  });

  it("a missing /init is a clear error with the console's last lines", () => {
    const r = crecipe(dir, ["r.ts", "noInit"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /the guest wrote no exit code: \/init could not be executed \(No such file or directory\)/);
    assert.match(r.stderr, /\| .*crecipe-rdinit: cannot execute \/init/);
  });

  it("a hanging guest is killed after its timeout and reported", () => {
    const started = Date.now();
    const r = crecipe(dir, ["r.ts", "hang"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /did not finish within 8 s and was killed/);
    assert.ok(Date.now() - started < 60000);
    assert.equal(spawnSync("pgrep", ["-f", "hang.initrd"]).status, 1, "no qemu left behind");
  });

  it("too little memory is an error that says so, not a silent exit", () => {
    const r = crecipe(dir, ["r.ts", "small"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /the guest wrote no exit code: .*(memory|panic)/);
  });

  it("a gzipped initrd boots, with memory for what it unpacks to, not for its own size", () => {
    const r = crecipe(dir, ["r.ts", "gzipped"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(dir, "out/gzipped.runkvm"), "utf8").trim(), String(96 << 20));
    const archive = fs.readFileSync(path.join(dir, "out/gzipped.initrd"));
    assert.ok(archive.length < 8 << 20, `compressed: ${archive.length} bytes`);
    const listing = spawnSync("sh", ["-c", "gzip -dc | cpio -t --quiet"], { input: archive, encoding: "utf8" }).stdout;
    assert.match(listing, /^zeros$/m);
    assert.match(listing, /^rdinit$/m);
    assert.match(fs.readFileSync(path.join(dir, "out/.crecipe/log/gzipped.runkvm.log"), "utf8"), /gzipped\.runkvm: \w+, 4\d\d MiB/);
  });

  it("the initrd reads back with GNU cpio: every entry, modes and links intact", () => {
    const r = crecipe(dir, ["r.ts", "okInitrd"]);
    assert.equal(r.status, 0, r.stderr);
    const archive = path.join(dir, "out/ok.initrd");
    const listing = spawnSync("cpio", ["-tv", "--quiet"], { input: fs.readFileSync(archive), encoding: "utf8" }).stdout;
    assert.match(listing, /^-rwxr-xr-x .* bin\/busybox$/m);
    assert.match(listing, /^lrwxrwxrwx .* bin\/sh -> busybox$/m);
    assert.match(listing, /^-rwxr-xr-x .* init$/m);
    assert.match(listing, /^-rwxr-xr-x .* rdinit$/m);
    const into = path.join(dir, "extracted");
    fs.mkdirSync(into);
    const x = spawnSync("cpio", ["-idm", "--quiet", "--no-absolute-filenames"], { cwd: into, input: fs.readFileSync(archive) });
    assert.equal(x.status, 0, String(x.stderr));
    assert.ok(fs.readFileSync(path.join(into, "bin/busybox")).equals(fs.readFileSync("/bin/busybox")));
    assert.equal(fs.readlinkSync(path.join(into, "bin/sh")), "busybox");
    assert.equal(fs.statSync(path.join(into, "init")).mode & 0o7777, 0o755);
    const again = path.join(dir, "again");
    assert.equal(crecipe(dir, ["r.ts", "-o", again, "okInitrd"]).status, 0);
    assert.ok(fs.readFileSync(path.join(again, "ok.initrd")).equals(fs.readFileSync(archive)), "two builds, same bytes");
  });

  it("works for an unprivileged user", { skip: hasTestUser ? false : NEEDS_TEST_USER }, () => {
    const userDir = tempDir();
    fs.chmodSync(userDir, 0o777);
    write(userDir, "r.ts", recipe);
    const r = crecipeAsTestUser(userDir, ["r.ts", "ok"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(userDir, "out/ok.runkvm"), "utf8"), "hello from the guest\n");
  });
});
