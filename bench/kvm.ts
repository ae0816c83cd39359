/**
 * run.kvm: cold `libs.runkvm` (initrd + boot, TCG here) beside the cookbook's way measured
 * in the same run: `find | cpio -o -H newc | gzip` of the same tree with its shell rdinit,
 * booted from the compressed /boot/vmlinuz with the same memory.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type Row, time } from "./util.ts";

export function kvmCases(repo: string): Row[] {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "crecipe-bench-kvm-"));
  try {
    const crecipe = [process.execPath, path.join(repo, "bin/crecipe.js"), "-q", path.join(repo, "recipes/simple.ts"), "libs.runkvm"];
    time(crecipe, { cwd: work, runs: 1 }); // builds libs, the rdinit and the cached vmlinux once
    const state = (name: string) => path.join(work, "out/.crecipe/state", `${name}.json`);
    const ours = time(crecipe, {
      cwd: work, runs: 5,
      before: () => ["libs.initrd", "libs.runkvm"].forEach((n) => fs.rmSync(state(n), { force: true })),
    });
    const tree = path.join(work, "cookbook");
    // libs is a snapshot of simple: the whole tree is simple's files with libs's on top.
    fs.cpSync(path.join(work, "out/simple"), tree, { recursive: true, verbatimSymlinks: true });
    fs.cpSync(path.join(work, "out/libs"), tree, { recursive: true, verbatimSymlinks: true });
    fs.writeFileSync(path.join(tree, "rdinit"), "#!/bin/busybox sh\nbusybox mount -t devtmpfs none /dev\n/init >/dev/ttyS1\necho $? >/dev/ttyS2\nbusybox poweroff -f\n", { mode: 0o755 });
    const kernel = fs.readdirSync("/boot").filter((f) => f.startsWith("vmlinuz-")).sort().at(-1)!;
    const script = `cd ${tree} && find . | cpio -o -H newc --quiet | gzip > ${work}/cookbook.initrd && ` +
      `qemu-system-x86_64 -accel tcg -m 144 -kernel /boot/${kernel} -initrd ${work}/cookbook.initrd ` +
      `-append "console=ttyS0 rdinit=/rdinit panic=-1" -display none -nodefaults -no-reboot ` +
      `-serial file:${work}/c -serial file:${work}/o -serial file:${work}/e && grep -q Hello ${work}/o`;
    const cookbook = time(["bash", "-c", script], { runs: 5 });
    return [{ case: "libs.runkvm cold (initrd + TCG boot)", crecipe: ours, peer: "cookbook: cpio|gzip, bzImage", peerSeconds: cookbook, goal: "≤ 0.8×" }];
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
