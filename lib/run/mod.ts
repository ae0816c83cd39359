/** Ways to run what was built: run.local (chroot), run.docker; load.docker. */
import { runDocker, loadDocker } from "./docker.ts";
import { local } from "./local.ts";

export const run = { local, docker: runDocker };
export const load = { docker: loadDocker };
