/** Ways to run what was built: run.local (chroot), run.kvm (qemu), run.docker; run.runc, run.crun, run.nspawn (OCI bundles), run.podman; load.docker. */
import { loadDocker, runDocker } from "./docker.ts";
import { kvm } from "./kvm.ts";
import { local } from "./local.ts";
import { nspawn } from "./nspawn.ts";
import { podman } from "./podman.ts";
import { crun, runc } from "./runc.ts";

export const run = { local, kvm, docker: runDocker, runc, crun, nspawn, podman };
export const load = { docker: loadDocker };
export { type RuntimeProblem, runtimeProblem } from "./probe.ts";
