/**
 * Extended attributes of host files (file capabilities, ACLs, user.* attributes), read
 * with getfattr (Debian package attr; Node has no xattr API): a host file's attributes
 * are part of its content for rebuild checks, and copying it into a tree keeps them, as
 * `cp -a` does. Trees record them in their metadata, not on disk: setting
 * security.capability needs a privilege an ordinary user does not have.
 */
import { createRequire } from "node:module";

const childProcess = (): typeof import("node:child_process") => createRequire(import.meta.url)("node:child_process");

/** Attributes that belong to the machinery, not to the file: overlayfs's own, SELinux labels. */
const OURS = /^(trusted\.overlay\.|user\.overlay\.|security\.selinux$)/;

export type Xattrs = Record<string, string>; // name → value, hex

let missingSaid = false;
let unprivilegedSaid = false;

/**
 * The extended attributes of `paths` (not following symlinks; `recursive` for directory
 * trees): host path → attributes, for the paths that have any. `say` is told once when
 * getfattr is missing or, for an ordinary user, that trusted.* cannot be read.
 */
export function readXattrs(paths: readonly string[], options: { recursive?: boolean; say?: (message: string) => void } = {}): Map<string, Xattrs> {
  const found = new Map<string, Xattrs>();
  if (!paths.length) return found;
  const args = ["--absolute-names", "-h", "-d", "-m", "-", "-e", "hex", ...(options.recursive ? ["-R"] : []), "--", ...paths];
  const r = childProcess().spawnSync("getfattr", args, { maxBuffer: 1 << 28 });
  if (r.error) {
    if (!missingSaid) options.say?.("getfattr is not installed (sudo apt-get install attr): extended attributes of host files (file capabilities, ACLs) are not carried");
    missingSaid = true;
    return found;
  }
  if (process.getuid?.() !== 0 && !unprivilegedSaid) {
    unprivilegedSaid = true;
    options.say?.("as an ordinary user, trusted.* extended attributes of host files cannot be read: they are not carried");
  }
  let current: Xattrs | undefined;
  for (const line of r.stdout.toString("latin1").split("\n")) {
    if (line.startsWith("# file: ")) {
      current = {};
      found.set(unquote(line.slice(8)).toString(), current);
    } else if (current && line.includes("=")) {
      const eq = line.indexOf("=");
      const name = line.slice(0, eq);
      const value = line.slice(eq + 1);
      if (OURS.test(name)) continue;
      current[name] = value.startsWith("0x") ? value.slice(2) : Buffer.from(value.replace(/^"|"$/g, ""), "latin1").toString("hex");
    }
  }
  for (const [p, attrs] of found) if (!Object.keys(attrs).length) found.delete(p);
  return found;
}

/** getfattr's quoting of a file name: \ooo octal escapes and \\ for a backslash. */
export function unquote(text: string): Buffer {
  const raw = Buffer.from(text, "latin1");
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i++;
    } else if (raw[i] === 0x5c && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString("latin1"))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString("latin1"), 8));
      i += 3;
    } else bytes.push(raw[i]);
  }
  return Buffer.from(bytes);
}

/**
 * The permission bits of the owning group in a POSIX ACL (system.posix_acl_access, hex):
 * with an ACL, stat's group bits are the ACL's mask, not the group's own.
 */
export function aclGroupBits(hex: string): number | undefined {
  const acl = Buffer.from(hex, "hex");
  if (acl.length < 4 || acl.readUInt32LE(0) !== 2) return undefined;
  for (let at = 4; at + 8 <= acl.length; at += 8) {
    if (acl.readUInt16LE(at) === 0x04) return acl.readUInt16LE(at + 2) & 0o7; // ACL_GROUP_OBJ
  }
  return undefined;
}
