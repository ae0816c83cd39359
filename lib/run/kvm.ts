/**
 * run.kvm(fs): the cookbook's default.runkvm.do. Boots the tree's initrd in qemu with a
 * real kernel: three serial ports to files (console, /init's stdout, its exit code),
 * -no-reboot, CR stripped. Output = what /init wrote; the target fails with /init's
 * exit code. A guest that writes no exit code, or hangs, is an error that shows the
 * console's last lines and the likely reason. Never needs root.
 */
import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import * as path from "node:path";
import { CommandError, CrecipeError } from "../engine/errors.ts";
import { type Node, target } from "../engine/node.ts";
import { initrd, type InitrdOptions } from "../targets/initrd.ts";
import { asFs } from "../targets/fs.ts";
import { bootableKernel, chooseAccel, findKernel } from "./kernel.ts";
import { cacheDir, readTextOr, requireTool } from "../host.ts";
import { childProcess } from "../runtime.ts";

/** How run.kvm boots a tree. */
export interface KvmOptions extends InitrdOptions {
  /** Guest memory in MiB (default: memoryFor(the bytes the initrd unpacks from)). */
  memory?: number;
  /** Seconds before a guest is killed (default 120). */
  timeout?: number;
  /** Kernel image (default: $CRECIPE_KERNEL, the running kernel, the newest /boot/vmlinuz-*). */
  kernel?: string;
  /** The guest's root remounted read-only before /init (the run never reaches the tree either way: it boots a copy in RAM). */
  readOnly?: boolean;
}

/**
 * Guest memory for an initrd of `bytes`, in MiB. The kernel keeps the archive while it
 * unpacks it into the rootfs (a tmpfs capped at half the RAM), plus what a Debian kernel
 * needs to boot at all. Measured here with a 3 MB busybox initrd: 96 MiB boots, 80 MiB
 * panics, 64 MiB hangs, 48 MiB and less reset silently; a 158 MiB Debian initrd fails to
 * unpack in 560 MiB and boots in 640 MiB.
 */
export function memoryFor(bytes: number): number {
  // The rootfs is a tmpfs capped at half the RAM, and while it fills the archive is still
  // in memory: 3.5 × the initrd (measured: 158 MiB fails in 560 MiB, boots in 640),
  // plus the kernel's own (96 MiB boots a 3 MB tree; 128 leaves room).
  const mib = 128 + Math.ceil((3.5 * bytes) / (1 << 20));
  return Math.ceil(mib / 16) * 16;
}

/**
 * How many bytes the initrd unpacks from: its size, or for a gzipped one (one stream) what
 * its trailer says it holds (modulo 4 GiB, far beyond what boots), if that is more.
 */
function unpackedSize(initrd: string): number {
  const fd = fs.openSync(initrd, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(4);
    if (size < 18 || fs.readSync(fd, head, 0, 2, 0) !== 2 || head[0] !== 0x1f || head[1] !== 0x8b) return size;
    if (fs.readSync(fd, head, 0, 4, size - 4) !== 4) return size;
    return Math.max(size, head.readUInt32LE(0));
  } finally {
    fs.closeSync(fd);
  }
}

/** Kernel command line: as short as boots: no probing of what the guest does not have. */
const APPEND = "console=ttyS0 rdinit=/rdinit panic=-1 quiet loglevel=3 mitigations=off tsc=reliable no_timer_check i8042.noaux i8042.nokbd";

export function kvm(tree: Node | string, options: KvmOptions = {}): Node {
  const fsNode = asFs(tree);
  const image = initrd(fsNode, options);
  const timeout = options.timeout ?? 120;
  return target(`${fsNode.name}.runkvm`, async (ctx) => {
    const initrdPath = await ctx.need(image);
    const kernel = findKernel(options.kernel);
    ctx.dependOn(kernel);
    const qemu = await requireTool("qemu-system-x86_64", ctx.name);
    const { accel } = await chooseAccel(kernel, path.join(ctx.outDir, ".crecipe", "accel.json"), (m) => console.error(`crecipe: ${m}`));
    const memory = options.memory ?? memoryFor(unpackedSize(initrdPath));
    const boot = await bootableKernel(kernel, cacheDir("kernels"), (m) => ctx.log(m));
    const files = { console: path.join(ctx.tmp, "console"), stdout: path.join(ctx.tmp, "stdout"), code: path.join(ctx.tmp, "exitcode") };
    const args = [
      "-accel", accel, "-m", String(memory), "-kernel", boot, "-initrd", initrdPath, "-append", options.readOnly ? `${APPEND} crecipe.ro` : APPEND,
      "-display", "none", "-nodefaults", "-no-reboot", "-no-user-config",
      "-serial", `file:${files.console}`, "-serial", `file:${files.stdout}`, "-serial", `file:${files.code}`,
    ];
    if (accel === "kvm") args.push("-cpu", "host");
    ctx.noteCommand([qemu, ...args].join(" "));
    ctx.log(`${ctx.name}: ${accel}, ${memory} MiB`);
    const { code, timedOut, stderr } = await runQemu(qemu, args, timeout, ctx.trackChild);
    const consoleText = readTextOr(files.console).replace(/\r/g, "");
    ctx.log(consoleText); // the failure report's "last lines" come from this log
    const exitText = readTextOr(files.code).replace(/\r/g, "").trim();
    if (/Initramfs unpacking failed/.test(consoleText)) {
      // The tree was cut short: whatever /init did, it did not run on the real tree.
      throw new CrecipeError(`the initrd did not fit in ${memory} MiB (Initramfs unpacking failed)`, {
        target: ctx.name,
        fix: `give it more memory: run.kvm(fs, { memory: ${memory * 2} })`,
      });
    }
    if (timedOut) {
      throw new CrecipeError(`the guest did not finish within ${timeout} s and was killed`, {
        target: ctx.name,
        fix: `see the console above; give it longer with run.kvm(fs, { timeout: ${timeout * 2} })`,
      });
    }
    if (!/^\d+$/.test(exitText)) {
      const reason = explain(consoleText, stderr, memory);
      throw new CommandError(code, { message: `the guest wrote no exit code: ${reason.what}`, target: ctx.name, fix: reason.fix });
    }
    fs.writeFileSync(ctx.out, readTextOr(files.stdout).replace(/\r/g, ""));
    const status = Number(exitText);
    if (status !== 0) throw new CommandError(status);
  }, { kind: "runkvm", options: { fs: fsNode, initrd: image, memory: options.memory ?? null, timeout, kernel: options.kernel ?? null, ...(options.readOnly ? { readOnly: true } : {}) }, derived: true });
}

/** Why a guest died without an exit code, read off its console. */
function explain(consoleText: string, stderr: string, memory: number): { what: string; fix?: string } {
  if (/Out of memory|out of memory|Initramfs unpacking failed|write error|Cannot allocate memory/i.test(consoleText)) {
    return { what: `it ran out of memory (${memory} MiB)`, fix: `give it more: run.kvm(fs, { memory: ${memory * 2} })` };
  }
  const exec = consoleText.match(/crecipe-rdinit: cannot execute \/init: (.*)/);
  if (exec) return { what: `/init could not be executed (${exec[1]})`, fix: "the tree needs an executable /init (and its libraries: root.addSharedLibraries())" };
  const panic = consoleText.match(/Kernel panic - not syncing: (.*)/);
  if (panic) return { what: `kernel panic: ${panic[1]}` };
  if (stderr.trim()) return { what: `qemu: ${stderr.trim().split("\n").at(-1)}` };
  if (!consoleText.trim()) {
    // Measured here: a guest far too small for the kernel resets before it prints a line.
    return {
      what: `it stopped before its kernel printed a line: ${memory} MiB is likely too little memory for the kernel`,
      fix: `give it more (run.kvm(fs, { memory: ${Math.max(128, memory * 2)} })), or check that the kernel boots`,
    };
  }
  return { what: "it stopped without a word (see the console lines)" };
}

function runQemu(qemu: string, args: string[], timeoutSeconds: number, track: (pid: number) => () => void) {
  return new Promise<{ code: number | null; timedOut: boolean; stderr: string }>((resolve, reject) => {
    const child = childProcess().spawn(qemu, args, { stdio: ["ignore", "ignore", "pipe"], detached: true });
    const untrack = child.pid ? track(child.pid) : () => {};
    let stderr = "";
    let timedOut = false;
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutSeconds * 1000);
    child.on("error", (error) => {
      clearTimeout(timer);
      untrack();
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      untrack();
      resolve({ code, timedOut, stderr });
    });
  });
}
