/**
 * Per-target locks shared by every crecipe process on an out dir. A lock file holds
 * the holder's pid and start time; a holder that died (kill -9, a crash) is detected
 * and its lock taken over, so a crash never wedges the next run.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export interface Lock {
  file: string;
  release(): void;
}

/** The kernel's start time of a process (field 22 of /proc/PID/stat), to tell pid reuse. */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

const me = `${process.pid} ${startTime(process.pid) ?? "?"}`;

function holderAlive(content: string): boolean {
  const [pidText, started] = content.trim().split(" ");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  const now = startTime(pid);
  return !(now !== undefined && started !== "?" && now !== started);
}

/** Try once. Returns a Lock, or the holder's description when someone alive holds it. */
export function tryLock(file: string): Lock | { heldBy: string } {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, "wx");
      fs.writeSync(fd, me + "\n");
      fs.closeSync(fd);
      return {
        file,
        release() {
          try {
            if (fs.readFileSync(file, "utf8").trim() === me) fs.unlinkSync(file);
          } catch { /* already gone */ }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    let content = "";
    try {
      content = fs.readFileSync(file, "utf8");
    } catch {
      continue; // released meanwhile: try again
    }
    // An empty file is a holder between open and write: give it a moment.
    if (content === "" || holderAlive(content)) return { heldBy: content.trim() || "a starting process" };
    try {
      if (fs.readFileSync(file, "utf8") === content) fs.unlinkSync(file); // stale: the holder died
    } catch { /* someone else cleaned it */ }
  }
  return { heldBy: "a process racing for it" };
}

/** Wait until the lock is ours, polling; `onWait` is told once who holds it. */
export async function lock(file: string, onWait?: (holder: string) => void, signal?: AbortSignal): Promise<Lock> {
  let told = false;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    const got = tryLock(file);
    if ("release" in got) return got;
    if (!told) onWait?.(got.heldBy), (told = true);
    if (signal?.aborted) throw signal.reason;
    await new Promise((r) => setTimeout(r, delay));
  }
}
