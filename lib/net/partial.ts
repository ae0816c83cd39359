/**
 * A download in progress, kept beside its output so an interrupted fetch goes on where it
 * stopped: OUT.part (the file being assembled, at its final size), OUT.part.chunks (the
 * index it follows) and OUT.part.json (which of those chunks are in place, verified).
 * The state is written after the bytes it vouches for, by temp file and rename; a resumed
 * fetch hashes each chunk it claims again before trusting it, so a torn write costs a
 * download, never a wrong byte.
 */
import * as fs from "node:fs";
import { writeFileAtomic } from "../engine/state.ts";

export interface PartialPaths {
  part: string;
  index: string;
  state: string;
  /** The previous OUT.part, kept as a seed when the server's file changed in between. */
  old: string;
  oldIndex: string;
}

export function partialPaths(out: string): PartialPaths {
  return { part: `${out}.part`, index: `${out}.part.chunks`, state: `${out}.part.json`, old: `${out}.part.old`, oldIndex: `${out}.part.old.chunks` };
}

export interface PartialState {
  version: 1;
  url: string;
  /** sha256 hex of the index bytes the part file follows. */
  index: string;
  /** One bit per chunk, base64: in place and verified. */
  done: string;
}

export function readState(file: string): PartialState | undefined {
  try {
    const state = JSON.parse(fs.readFileSync(file, "utf8"));
    return state?.version === 1 && typeof state.index === "string" && typeof state.done === "string" ? state : undefined;
  } catch {
    return undefined;
  }
}

export function writeState(file: string, state: PartialState): void {
  writeFileAtomic(file, JSON.stringify(state) + "\n");
}

/** A bit set as base64, for the state file. */
export function packBits(bits: Uint8Array): string {
  const packed = new Uint8Array(Math.ceil(bits.length / 8));
  for (let i = 0; i < bits.length; i++) if (bits[i]) packed[i >> 3] |= 1 << (i & 7);
  return Buffer.from(packed).toString("base64");
}

export function unpackBits(text: string, length: number): Uint8Array {
  const packed = Buffer.from(text, "base64");
  const bits = new Uint8Array(length);
  for (let i = 0; i < length; i++) bits[i] = (packed[i >> 3] >> (i & 7)) & 1;
  return bits;
}

/** Remove every file of a partial download. */
export function removePartial(paths: PartialPaths, keepOld = false): void {
  for (const file of [paths.part, paths.index, paths.state, ...(keepOld ? [] : [paths.old, paths.oldIndex, `${paths.old}.json`])]) fs.rmSync(file, { force: true });
}
