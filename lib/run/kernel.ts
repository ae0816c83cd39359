/**
 * Which kernel a run.kvm guest boots, and whether KVM really works here.
 * Kernel: the option, then $CRECIPE_KERNEL, then the running kernel's image, then the
 * newest /boot/vmlinuz-*. Acceleration: KVM when a tiny guest boots with it in time
 * (probed once per boot of the host, the verdict cached), else TCG, said once.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CrecipeError } from "../engine/errors.ts";
import { readTextOr, requireTool } from "../host.ts";
import { childProcess } from "../runtime.ts";

export function findKernel(option?: string): string {
  const candidates: { path: string; why: string }[] = [];
  if (option) candidates.push({ path: option, why: "the kernel option" });
  else if (process.env.CRECIPE_KERNEL) candidates.push({ path: process.env.CRECIPE_KERNEL, why: "$CRECIPE_KERNEL" });
  else {
    candidates.push({ path: `/boot/vmlinuz-${os.release()}`, why: "the running kernel" });
    const boot = fs.existsSync("/boot") ? fs.readdirSync("/boot").filter((f) => f.startsWith("vmlinuz-")) : [];
    boot.sort((a, b) => compareVersions(b.slice(8), a.slice(8)));
    for (const f of boot) candidates.push({ path: path.join("/boot", f), why: "the newest in /boot" });
  }
  const unreadable: string[] = [];
  for (const c of candidates) {
    if (!fs.existsSync(c.path)) {
      if (c.why !== "the running kernel") {
        throw new CrecipeError(`${c.why} names ${c.path}, which does not exist`, { fix: "point it at a kernel image (vmlinuz)" });
      }
      continue;
    }
    try {
      fs.accessSync(c.path, fs.constants.R_OK);
      return c.path;
    } catch {
      unreadable.push(c.path);
    }
  }
  if (unreadable.length) {
    throw new CrecipeError(`no readable kernel: ${unreadable.join(", ")} cannot be read by this user`, {
      fix: `sudo chmod 0644 ${unreadable[0]}, or copy a kernel you may read and set CRECIPE_KERNEL to it`,
    });
  }
  throw new CrecipeError("no kernel to boot: nothing in /boot/vmlinuz-*", { fix: "sudo apt-get install linux-image-amd64, or set CRECIPE_KERNEL" });
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? "";
    const y = pb[i] ?? "";
    const nx = Number(x);
    const ny = Number(y);
    if (!Number.isNaN(nx) && !Number.isNaN(ny) && nx !== ny) return nx - ny;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export type Accel = "kvm" | "tcg";
let verdict: Promise<{ accel: Accel; why: string }> | undefined;

/**
 * KVM if /dev/kvm opens and a guest with no initrd panics and exits within the timeout
 * under it; otherwise TCG. Cached in `cacheFile` for this host boot.
 */
export function chooseAccel(kernel: string, cacheFile: string, say: (m: string) => void): Promise<{ accel: Accel; why: string }> {
  verdict ??= (async () => {
    if (process.env.CRECIPE_ACCEL === "tcg" || process.env.CRECIPE_ACCEL === "kvm") {
      return { accel: process.env.CRECIPE_ACCEL as Accel, why: "$CRECIPE_ACCEL" };
    }
    const bootId = readTextOr("/proc/sys/kernel/random/boot_id", "").trim();
    try {
      const cached = JSON.parse(fs.readFileSync(cacheFile, "utf8"));
      if (cached.bootId === bootId && (cached.accel === "kvm" || cached.accel === "tcg")) {
        if (cached.accel === "tcg") say(`KVM is not usable here (${cached.why}); using TCG, which is slower`);
        return cached;
      }
    } catch { /* probe */ }
    const result = await probe(kernel);
    fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
    fs.writeFileSync(cacheFile, JSON.stringify({ ...result, bootId }) + "\n");
    if (result.accel === "tcg") say(`KVM is not usable here (${result.why}); using TCG, which is slower`);
    return result;
  })();
  return verdict;
}

async function probe(kernel: string): Promise<{ accel: Accel; why: string }> {
  try {
    fs.closeSync(fs.openSync("/dev/kvm", "r+"));
  } catch (error) {
    return { accel: "tcg", why: `/dev/kvm: ${(error as NodeJS.ErrnoException).code}` };
  }
  const qemu = await requireTool("qemu-system-x86_64");
  return await new Promise((resolve) => {
    const child = childProcess().spawn(qemu, ["-accel", "kvm", "-m", "128", "-kernel", kernel, "-append", "console=ttyS0 panic=-1 quiet", "-display", "none", "-nodefaults", "-serial", "null", "-no-reboot"], { stdio: "ignore" });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve({ accel: "tcg", why: "a KVM guest hung for 15 s" });
    }, 15000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? { accel: "kvm", why: "a KVM guest booted" } : { accel: "tcg", why: `a KVM guest failed (qemu exit ${code})` });
    });
  });
}


/**
 * The kernel to hand qemu. A bzImage decompresses itself, which under TCG takes about
 * half of a small guest's boot (4.7 s → 2.3 s here); a kernel built with CONFIG_PVH
 * (Debian's is) boots straight from its uncompressed ELF. So: extract vmlinux once per
 * kernel (cached by the image's sha256) and boot that; fall back to the bzImage when it
 * is not PVH-capable or cannot be unpacked.
 */
export async function bootableKernel(kernel: string, cacheDir: string, log: (m: string) => void): Promise<string> {
  if (process.env.CRECIPE_KERNEL_DIRECT === "0") return kernel;
  const config = path.join(path.dirname(kernel), path.basename(kernel).replace(/^vmlinuz-/, "config-"));
  if (!/^CONFIG_PVH=y$/m.test(readTextOr(config, ""))) return kernel;
  const image = fs.readFileSync(kernel);
  const digest = (await import("node:crypto")).createHash("sha256").update(image).digest("hex");
  const cached = path.join(cacheDir, `${digest.slice(0, 32)}.vmlinux`);
  if (fs.existsSync(cached)) return cached;
  const formats: { magic: number[]; tool: string; args: string[] }[] = [
    { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], tool: "xz", args: ["-dc", "--single-stream"] },
    { magic: [0x28, 0xb5, 0x2f, 0xfd], tool: "zstd", args: ["-dc"] },
    { magic: [0x1f, 0x8b, 0x08], tool: "gzip", args: ["-dc"] },
  ];
  for (const format of formats) {
    const at = image.indexOf(Buffer.from(format.magic));
    if (at < 0) continue;
    const temp = `${cached}.${process.pid}.tmp`;
    fs.mkdirSync(cacheDir, { recursive: true });
    const r = childProcess().spawnSync(format.tool, format.args, { input: image.subarray(at), maxBuffer: 1 << 30 });
    const elf = r.stdout;
    if (elf && elf.length > 4 && elf.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
      fs.writeFileSync(temp, elf);
      fs.renameSync(temp, cached);
      log(`unpacked ${kernel} to boot it without self-decompression (${(elf.length / 1e6).toFixed(0)} MB, cached)`);
      return cached;
    }
  }
  return kernel;
}
