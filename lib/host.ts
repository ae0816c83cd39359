/**
 * The host crecipe runs on: its tools (found on $PATH, or an error naming the Debian
 * package that has them) and crecipe's cache directory (shared with bin/boot.js).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CrecipeError } from "./engine/errors.ts";

/** Command → the Debian package that ships it. */
export const PACKAGES: Record<string, string> = {
  unshare: "util-linux", chroot: "coreutils", cp: "coreutils", mknod: "coreutils", ldd: "libc-bin", cc: "gcc",
  gzip: "gzip", pigz: "pigz", zstd: "zstd", docker: "docker.io", "qemu-system-x86_64": "qemu-system-x86",
  cpio: "cpio", busybox: "busybox-static", mmdebstrap: "mmdebstrap", debootstrap: "debootstrap",
  runc: "runc", skopeo: "skopeo", umoci: "umoci", newuidmap: "uidmap", getfattr: "attr", setfattr: "attr",
};

/** The absolute path of a command on $PATH (and the sbin dirs), or undefined. */
export async function which(command: string): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin"]);
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch { /* next */ }
  }
  return undefined;
}

/** Like which(), but a missing tool is an error naming the package to install. */
export async function requireTool(command: string, target?: string): Promise<string> {
  const found = await which(command);
  if (found) return found;
  const pkg = PACKAGES[command] ?? command;
  throw new CrecipeError(`${command} is not installed`, { target, fix: `sudo apt-get install ${pkg}` });
}

/** A text file's contents, or `fallback` when it cannot be read (a missing port file, no config). */
export function readTextOr(file: string, fallback = ""): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return fallback;
  }
}

/** crecipe's cache (shared with bin/boot.js): $CRECIPE_CACHE, $XDG_CACHE_HOME/crecipe or ~/.cache/crecipe. */
export function cacheDir(...parts: string[]): string {
  const root = process.env.CRECIPE_CACHE
    ? path.resolve(process.env.CRECIPE_CACHE)
    : path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "crecipe");
  return path.join(root, ...parts);
}
