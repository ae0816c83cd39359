/**
 * Per-target locks shared by every crecipe process on an out dir. A lock file holds its
 * holder's record (holder.ts) and appears whole: the record is written to a temp file that
 * is then hard-linked to the lock's name, so no holder's lock is ever seen empty or cut short.
 * What a waiter can find in a lock file, then:
 *   - a holder that is provably dead (kill -9, a crash, a reboot): its lock is taken over;
 *   - anything unreadable (a crash of an older crecipe, a full disk, a power loss): debris,
 *     taken over once it is DEBRIS_GRACE_MS old, and said so;
 *   - a holder that may be alive, here or in another pid namespace: waited for, never taken.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { removeTree } from "./io.ts";
import { describeHolder, holderId, type HolderRecord, parseHolderId, parseRecord, provablyDead, self, selfRecord } from "./holder.ts";

export interface Lock {
  file: string;
  /** The lock was not free at once: someone else may have built the target meanwhile. */
  waited: boolean;
  release(): void;
}

/** Who holds a lock we did not get: a record, or nothing readable (debris, or a race). */
export interface Held {
  heldBy?: HolderRecord;
}

/** An older crecipe wrote its record just after creating the file: unreadable for longer is debris. */
const DEBRIS_GRACE_MS = 2000;

/** Try once. Returns the Lock, or who holds it. `onTakeover` hears of stale locks removed on the way. */
export function tryLock(file: string, onTakeover?: (what: string) => void): Lock | Held {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const record = selfRecord();
  const text = JSON.stringify(record) + "\n";
  const temp = path.join(path.dirname(file), `${holderId(self)}.${record.nonce}.tmp`);
  fs.writeFileSync(temp, text);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (place(temp, file, text)) return held(file, text);
      const found = readLock(file);
      if (!found) continue; // released meanwhile: try again
      const stale = staleness(found);
      if (!stale) return { heldBy: found.record };
      if (removeStale(file, found.text, { temp, text })) onTakeover?.(stale);
    }
    return {}; // others raced for it
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

/** Link the full record to the lock's name: false if someone has it. */
function place(temp: string, file: string, text: string): boolean {
  try {
    fs.linkSync(temp, file);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS" && code !== "EOPNOTSUPP") throw error;
  }
  // A file system without hard links: create and write, as crecipe did before; the grace
  // period covers the moment the file is empty.
  try {
    fs.writeFileSync(file, text, { flag: "wx" });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
}

function held(file: string, text: string): Lock {
  return {
    file,
    waited: false,
    release() {
      try {
        if (fs.readFileSync(file, "utf8") === text) fs.unlinkSync(file);
      } catch { /* already gone */ }
    },
  };
}

interface Found {
  text: string;
  record?: HolderRecord;
  ageMs: number;
}

function readLock(file: string): Found | undefined {
  try {
    const text = fs.readFileSync(file, "utf8");
    // |age|: a clock set back must not keep debris forever.
    const ageMs = Math.abs(Date.now() - fs.statSync(file).mtimeMs);
    return { text, record: parseRecord(text), ageMs };
  } catch {
    return undefined;
  }
}

/** Who holds a lock, when a live or unknown process does (for the cycle search, waits.ts). */
export function lockHolder(file: string): HolderRecord | undefined {
  const found = readLock(file);
  return found?.record && !provablyDead(found.record) ? found.record : undefined;
}

/** Why a lock may be taken over, or undefined while its holder may be alive. */
function staleness(found: Found): string | undefined {
  if (found.record) return provablyDead(found.record) ? `took over the lock of ${describeHolder(found.record)}, which is gone` : undefined;
  if (found.ageMs < DEBRIS_GRACE_MS) return undefined;
  const what = found.text === "" ? "empty" : found.text.length < 40 ? JSON.stringify(found.text) : `${found.text.length} unreadable bytes`;
  return `removed a lock file left by a crash (${what})`;
}

/**
 * Remove a stale lock, if it still holds `text`. Breakers take turns through NAME.lock.takeover,
 * so two of them cannot both see the stale lock, one replace it, and the other remove the new one.
 * The takeover file is held for a few system calls; one left by a breaker that died is removed
 * when its holder is provably dead (or it is unreadable debris).
 */
function removeStale(file: string, text: string, ours: { temp: string; text: string }): boolean {
  const guard = `${file}.takeover`;
  if (!place(ours.temp, guard, ours.text)) {
    const found = readLock(guard);
    if (found && staleness(found)) removeIfUnchanged(guard, found.text);
    return false;
  }
  try {
    return removeIfUnchanged(file, text);
  } finally {
    fs.rmSync(guard, { force: true });
  }
}

function removeIfUnchanged(file: string, text: string): boolean {
  try {
    if (fs.readFileSync(file, "utf8") !== text) return false;
    fs.unlinkSync(file);
    return true;
  } catch {
    return false; // gone meanwhile
  }
}

export interface WaitOptions {
  /** Stops waiting (Ctrl-C: the engine aborts it). */
  signal?: AbortSignal;
  /** Told once per holder waited for. */
  onWait?: (holder: HolderRecord) => void;
  onTakeover?: (what: string) => void;
  /** Called at every poll while waiting; may throw to give up (a cycle across processes, waits.ts). */
  onPoll?: () => void;
}

/** Wait until the lock is ours, polling. */
export async function lock(file: string, options: WaitOptions = {}): Promise<Lock> {
  const told = new Set<string>();
  for (let delay = 20, waited = false; ; delay = Math.min(delay * 2, 250), waited = true) {
    const got = tryLock(file, options.onTakeover);
    if ("release" in got) return Object.assign(got, { waited });
    if (options.signal?.aborted) throw options.signal.reason;
    options.onPoll?.(); // before the message: a wait that can never end is an error, not news
    const holder = got.heldBy;
    if (holder && !told.has(holder.nonce)) told.add(holder.nonce), options.onWait?.(holder);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** The message a waiter prints once: which target, who holds it, how to stop, what to do if it is gone. */
export function waitMessage(target: string, holder: HolderRecord, lockShown: string): string {
  return [
    `${target} is being built by another crecipe: ${describeHolder(holder)}`,
    `  waiting for it to finish; Ctrl-C stops waiting`,
    holder.pidns === self.pidns ? `  if that process is gone for good, remove ${lockShown}`
    : `  crecipe cannot see into that pid namespace; if that process is gone for good, remove ${lockShown}`,
  ].join("\n");
}

/**
 * Remove what dead processes left in the lock dir: their temp records and wait records
 * (named after their holder, `PID-START-PIDNS-BOOT.…`). Lock files are left to tryLock.
 */
export function sweepLockDir(dir: string): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.endsWith(".lock") || name.endsWith(".takeover")) continue;
    const holder = parseHolderId(name.split(".")[0]);
    if (holder && provablyDead(holder)) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/**
 * Remove the temp dirs (`TARGET.HOLDER.RANDOM`) of processes that are provably dead; a
 * live or unknown holder's dir stays, so a sweep never pulls a tree from under a build.
 * A dir without a holder in its name comes from an older crecipe: removed once it has
 * not changed for `unnamedAgeMs`.
 */
export function sweepTempDir(dir: string, unnamedAgeMs = 3600_000): number {
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const full = path.join(dir, name);
    const holder = parseHolderId(name.split(".").at(-2) ?? "");
    let gone: boolean;
    if (holder) gone = provablyDead(holder);
    else {
      const st = fs.lstatSync(full, { throwIfNoEntry: false });
      gone = st !== undefined && Date.now() - st.mtimeMs > unnamedAgeMs;
    }
    if (!gone) continue;
    try {
      removeTree(full);
      removed++;
    } catch { /* going already (a background rm of .crecipe/trash), or not ours to remove: left for the next sweep */ }
  }
  return removed;
}
