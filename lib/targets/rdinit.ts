/** The static /rdinit every run.kvm guest starts with (rdinit/rdinit.c), compiled once. */
import { fileURLToPath } from "node:url";
import { CommandError } from "../engine/errors.ts";
import { type Node, target } from "../engine/node.ts";
import { $ } from "../runtime.ts";
import { requireTool } from "../host.ts";

const source = fileURLToPath(new URL("./rdinit/rdinit.c", import.meta.url));

/** The `crecipe-rdinit` target: rdinit.c built with `cc -static`. */
export function rdinit(): Node {
  return target("crecipe-rdinit", async (ctx) => {
    ctx.dependOn(source);
    const cc = await requireTool("cc", ctx.name);
    const r = await $({ nothrow: true })`${cc} -static -Os -s -o ${ctx.out} ${source}`;
    if (r.exitCode !== 0) {
      throw new CommandError(r.exitCode, { fix: "install a C compiler with a static libc: sudo apt-get install gcc libc6-dev" });
    }
  }, { kind: "rdinit", shared: true, description: "crecipe's static /rdinit for qemu guests" });
}
