/** Ways to run what was built: run.local (chroot), run.kvm (qemu), run.docker; load.docker. */
import { loadDocker, runDocker } from "./docker.ts";
import { kvm } from "./kvm.ts";
import { local } from "./local.ts";

export const run = { local, kvm, docker: runDocker };
export const load = { docker: loadDocker };
