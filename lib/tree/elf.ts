/** Shared libraries of the ELF files in a tree, as the host's ldd sees them. */
import * as fs from "node:fs";
import { $ } from "../runtime.ts";

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** Which of `files` start with the ELF magic. */
export function elfFiles(files: readonly string[]): string[] {
  const head = Buffer.alloc(4);
  return files.filter((file) => {
    const fd = fs.openSync(file, "r");
    try {
      return fs.readSync(fd, head, 0, 4, 0) === 4 && head.equals(ELF_MAGIC);
    } finally {
      fs.closeSync(fd);
    }
  });
}

/**
 * Host paths of every library the ELF files among `files` load, the dynamic loader
 * included (ldd's `=> /path` and bare `/path` lines). Static files contribute nothing.
 */
export async function sharedLibraries(files: readonly string[]): Promise<string[]> {
  const libs = new Set<string>();
  for (const file of elfFiles(files)) {
    const result = await $({ nothrow: true })`ldd ${file}`;
    if (result.exitCode !== 0) continue; // "not a dynamic executable"
    for (const line of result.stdout.split("\n")) {
      const m = line.match(/=>\s*(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(0x/);
      if (m) libs.add(m[1]);
    }
  }
  return [...libs].sort();
}
