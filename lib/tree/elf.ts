/** Shared libraries of the ELF files in a tree, as the host's ldd sees them. */
import * as fs from "node:fs";
import { walkTree } from "../engine/hash.ts";
import { $ } from "../runtime.ts";

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** Regular files under `dir` that start with the ELF magic. */
export function elfFiles(dir: string): string[] {
  const found: string[] = [];
  const head = Buffer.alloc(4);
  walkTree(dir, (_rel, full, st) => {
    if (!st.isFile()) return;
    const fd = fs.openSync(full, "r");
    const n = fs.readSync(fd, head, 0, 4, 0);
    fs.closeSync(fd);
    if (n === 4 && head.equals(ELF_MAGIC)) found.push(full.toString());
  });
  return found.sort();
}

/**
 * Host paths of every library the ELF files under `dir` load, the dynamic loader
 * included (ldd's `=> /path` and bare `/path` lines). Static files contribute nothing.
 */
export async function sharedLibraries(dir: string): Promise<string[]> {
  const libs = new Set<string>();
  for (const file of elfFiles(dir)) {
    const result = await $({ nothrow: true })`ldd ${file}`;
    if (result.exitCode !== 0) continue; // "not a dynamic executable"
    for (const line of result.stdout.split("\n")) {
      const m = line.match(/=>\s*(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(0x/);
      if (m) libs.add(m[1]);
    }
  }
  return [...libs].sort();
}
