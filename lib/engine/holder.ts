/**
 * Who holds a lock or a temp dir, told apart from every other process: boot id, pid
 * namespace, pid, and the kernel's start time of that pid. A bare pid is not enough: a
 * crecipe in another pid namespace (a container, `unshare -p`) has a pid that names someone
 * else here, or nobody. So a holder is dead only when that is provable — the machine
 * rebooted, or it shares our pid namespace and its pid is gone or reused — and anything
 * else may be alive: its lock is waited for and its temp dir kept.
 */
import * as fs from "node:fs";

export interface Holder {
  /** The first 12 hex digits of /proc/sys/kernel/random/boot_id; "" when unknown. */
  boot: string;
  /** Inode of the holder's pid namespace (/proc/self/ns/pid); 0 when unknown. */
  pidns: number;
  /** The holder's pid, in its own pid namespace. */
  pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks after boot), to tell a reused pid; "" when unknown. */
  start: string;
}

/** What a lock file holds: the holder, and for the person waiting, since when and running what. */
export interface HolderRecord extends Holder {
  since: string;
  cmd: string;
  /** Tells this lock apart from another taken by the same process (release checks it). */
  nonce: string;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function startTimeIn(statFile: string): string {
  const stat = readText(statFile);
  return stat === undefined ? "" : stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
}

function pidNamespace(): number {
  try {
    return fs.statSync("/proc/self/ns/pid").ino;
  } catch {
    return 0;
  }
}

/** Our /proc shows our own pid namespace (not so after `unshare -p` without --mount-proc). */
function procIsOurs(): boolean {
  try {
    return fs.readlinkSync("/proc/self") === String(process.pid);
  } catch {
    return false;
  }
}

/** This process. */
export const self: Holder = {
  boot: (readText("/proc/sys/kernel/random/boot_id") ?? "").replaceAll("-", "").trim().slice(0, 12),
  pidns: pidNamespace(),
  pid: process.pid,
  start: startTimeIn("/proc/self/stat"),
};
const ourProc = procIsOurs();

/** A record of this process taking something now. */
export function selfRecord(): HolderRecord {
  const cmdline = readText("/proc/self/cmdline")?.split("\0").filter(Boolean).join(" ") ?? process.argv.join(" ");
  return {
    ...self,
    since: new Date().toISOString(),
    cmd: cmdline.length > 200 ? cmdline.slice(0, 199) + "…" : cmdline,
    nonce: Math.random().toString(36).slice(2, 10),
  };
}

/** A holder in a file name (temp dirs, wait files): `PID-START-PIDNS-BOOT`, no dots. */
export function holderId(h: Holder): string {
  return `${h.pid}-${h.start || "x"}-${h.pidns}-${h.boot || "x"}`;
}

export function parseHolderId(id: string): Holder | undefined {
  const m = /^(\d+)-(\d+|x)-(\d+)-([0-9a-f]+|x)$/.exec(id);
  if (!m || Number(m[1]) <= 0) return undefined;
  return { pid: Number(m[1]), start: m[2] === "x" ? "" : m[2], pidns: Number(m[3]), boot: m[4] === "x" ? "" : m[4] };
}

/** A lock file's text → its record; undefined for anything else (empty, cut short, garbage). */
export function parseRecord(text: string): HolderRecord | undefined {
  try {
    const r = JSON.parse(text);
    const ok = r && typeof r === "object" && typeof r.boot === "string" && Number.isInteger(r.pidns) && Number.isInteger(r.pid) && r.pid > 0 &&
      typeof r.start === "string" && typeof r.since === "string" && typeof r.cmd === "string" && typeof r.nonce === "string";
    return ok ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Does a process with this pid exist in our pid namespace? EPERM: yes, someone else's. */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** Only what is provable: a reboot since, or (in our pid namespace) its pid gone or reused. */
export function provablyDead(h: Holder): boolean {
  if (h.boot && self.boot && h.boot !== self.boot) return true;
  if (!h.pidns || h.pidns !== self.pidns) return false; // its pid means nothing here
  if (!pidExists(h.pid)) return true;
  if (!ourProc || !h.start) return false;
  const now = startTimeIn(`/proc/${h.pid}/stat`);
  return now !== "" && now !== h.start;
}

/** For the person waiting: "pid 4242 in another pid namespace (pid:[4026532178]), since …, running: …". */
export function describeHolder(h: HolderRecord): string {
  const where = h.pidns === self.pidns ? "" : ` in another pid namespace (pid:[${h.pidns || "?"}])`;
  return `pid ${h.pid}${where}, since ${localTime(h.since)}, running: ${h.cmd}`;
}

function localTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}
