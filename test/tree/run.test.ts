/**
 * root.run, a Dockerfile's RUN: chrooted in the tree being built, rootless, with env, cwd
 * and stdin; its output in the target's log, its failure in the failure block. And
 * root.remove refuses a path that leaves the tree.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { it } from "node:test";
import { crecipe, modUrl, read, tempDir, write } from "../helpers.ts";

const hasBusybox = fs.existsSync("/bin/busybox");

it("root.run: env, cwd and stdin reach the command; its output is in the log", { skip: hasBusybox ? false : "needs /bin/busybox" }, () => {
  const dir = tempDir();
  write(dir, "r.ts", `import { fs } from ${JSON.stringify(modUrl)};
export default fs("t", async (root) => {
  await root.copyIn("/bin/busybox", "/bin/");
  await root.symlink("busybox", "/bin/sh");
  await root.write("/etc/motd", "hi\\n");
  const { stdout } = await root.run(["/bin/busybox", "sh", "-c", "echo $GREETING; busybox pwd; busybox cat; busybox id -u"], {
    env: { GREETING: "hello" }, cwd: "/etc", input: "from stdin\\n",
  });
  await root.write("/result", stdout);
});
`);
  const r = crecipe(dir, ["r.ts"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(read(dir, "out/t/result"), "hello\n/etc\nfrom stdin\n0\n");
  assert.match(read(dir, "out/.crecipe/log/t.log"), /from stdin/);
});

it("root.run: a failing command fails the target with the command and its exit code", { skip: hasBusybox ? false : "needs /bin/busybox" }, () => {
  const dir = tempDir();
  write(dir, "r.ts", `import { fs } from ${JSON.stringify(modUrl)};
export default fs("t", async (root) => {
  await root.copyIn("/bin/busybox", "/bin/");
  await root.run(["/bin/busybox", "sh", "-c", "echo about to fail >&2; exit 3"]);
});
`);
  const r = crecipe(dir, ["r.ts"]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /t/);
  assert.match(r.stderr, /exit(ed with)? (code )?3|exit code 3/);
  assert.match(r.stderr, /about to fail/);
});

it("root.remove refuses a path that leaves the tree", () => {
  const dir = tempDir();
  write(dir, "outside", "keep me");
  write(dir, "r.ts", `import { fs } from ${JSON.stringify(modUrl)};
export default fs("t", async (root) => {
  await root.write("/a", "a");
  await root.remove("../../outside");
});
`);
  const r = crecipe(dir, ["r.ts"]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /could escape the tree/);
  // Through a symlink in the tree: it resolves inside the tree, never to the host.
  write(dir, "link.ts", `import { fs } from ${JSON.stringify(modUrl)};
export default fs("l", async (root) => {
  await root.symlink(${JSON.stringify(dir)}, "/esc");
  await root.remove("/esc/outside");
});
`);
  const link = crecipe(dir, ["link.ts"]);
  assert.equal(link.status, 1, link.stderr);
  assert.match(link.stderr, /no such file or directory in the tree/);
  assert.equal(read(dir, "outside"), "keep me");
});
