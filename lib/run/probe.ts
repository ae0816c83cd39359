/**
 * Can this host run containers with runc, crun, systemd-nspawn or podman? Asked of a
 * probe: a bundle whose rootfs holds only the host's busybox (and the libraries it
 * loads, if it is not the static one), run the way the runners run a real bundle.
 * A runner asks only after a container failed to start, to tell "this runtime cannot
 * work here" (a host's cgroups, rlimits, namespaces) from "this bundle is wrong"; tests
 * ask first, to skip a runner with the reason. Asked once per process and runtime.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { removeTree } from "../engine/io.ts";
import { hostnameOf, runtimeConfig } from "../formats/runtime-spec.ts";
import { which } from "../host.ts";
import { $, childProcess } from "../runtime.ts";
import { type BundleRuntime, launch, RUNTIME_PACKAGES, RUNTIME_TOOLS, runtimeMessage } from "./container.ts";

/** The container runtimes crecipe can run a bundle or an image with. */
export type Runtime = BundleRuntime | "podman";

/** Why a runtime cannot run containers on this host, and what to do. */
export interface RuntimeProblem {
  /** The runtime that cannot work here. */
  runtime: Runtime;
  /** Its complaint, in one line. */
  why: string;
  /** What to do about it. */
  fix: string;
}

const USERNS_FIX = "enable unprivileged user namespaces (sudo sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000), or run as root";

/** What to do about a runtime's complaint `why`. */
export function fixFor(runtime: Runtime, why: string): string {
  if (/cgroup/i.test(why)) return `${runtime} does not support this host's cgroups (a v1 + v2 hybrid): boot with cgroup v2 only (systemd.unified_cgroup_hierarchy=1), or use run.runc`;
  if (/rlimit/i.test(why)) return `${runtime} raises resource limits, which needs CAP_SYS_RESOURCE this host withholds: use run.runc`;
  if (/uid_map|gid_map|user namespace|newuidmap|unshare failed/i.test(why)) return USERNS_FIX;
  if (/overlay/i.test(why)) return "overlayfs in a user namespace needs Linux ≥ 5.11: run as root, or pass { readOnly: true } (no overlay)";
  return `see ${runtime}'s message above; run.runc and run.local run the same tree`;
}

const asked = new Map<Runtime, Promise<RuntimeProblem | undefined>>();

/**
 * Why `runtime` cannot run a container here, or undefined when it can.
 *
 * ```ts
 * const problem = await runtimeProblem("crun");
 * if (problem) console.log(`crun: ${problem.why} (${problem.fix})`);
 * ```
 */
export function runtimeProblem(runtime: Runtime): Promise<RuntimeProblem | undefined> {
  let answer = asked.get(runtime);
  if (!answer) asked.set(runtime, (answer = probe(runtime)));
  return answer;
}

async function probe(runtime: Runtime): Promise<RuntimeProblem | undefined> {
  const tool = RUNTIME_TOOLS[runtime];
  if (!(await which(tool))) return { runtime, why: `${tool} is not installed`, fix: `sudo apt-get install ${RUNTIME_PACKAGES[runtime]}` };
  if (runtime === "nspawn" && process.getuid?.() !== 0) {
    return { runtime, why: "systemd-nspawn runs containers as root only", fix: "run crecipe as root, or use run.runc (rootless)" };
  }
  const busybox = await which("busybox");
  if (!busybox) return { runtime, why: "the probe needs busybox", fix: "sudo apt-get install busybox-static" };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crecipe-probe-"));
  try {
    const rootfs = path.join(dir, "rootfs");
    for (const file of [busybox, ...libraries(busybox)]) {
      const at = path.join(rootfs, "bin", path.basename(file));
      const into = file === busybox ? at : path.join(rootfs, file);
      fs.mkdirSync(path.dirname(into), { recursive: true });
      fs.copyFileSync(fs.realpathSync(file), into);
      fs.chmodSync(into, 0o755);
    }
    for (const d of ["proc", "dev", "sys", "tmp", "usr"]) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
    const args = ["/bin/busybox", "true"];
    if (runtime === "podman") {
      const r = await $({ nothrow: true, quiet: true })`podman run --rm --network=none --rootfs ${rootfs} ${args}`;
      return r.exitCode === 0 ? undefined : problem(runtime, runtimeMessage(r.stderr) || `exit code ${r.exitCode}`);
    }
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    fs.writeFileSync(path.join(dir, "config.json"), runtimeConfig({ args, idMap: uid === 0 ? undefined : { uid, gid }, hostname: hostnameOf("probe") }));
    const r = await launch(runtime, dir);
    if (r.exitCode === 0) return undefined;
    if (r.noOverlay) return problem(runtime, "overlayfs could not be mounted for the run's throw-away root");
    return problem(runtime, runtimeMessage(r.stderr) || `exit code ${r.exitCode}`);
  } finally {
    removeTree(dir);
  }
}

/** What a dynamically linked busybox loads (nothing for busybox-static), quietly: the probe prints nothing. */
function libraries(binary: string): string[] {
  const r = childProcess().spawnSync("ldd", [binary], { encoding: "utf8" });
  if (r.status !== 0) return [];
  return [...r.stdout.matchAll(/(?:=>\s*|^\s*)(\/\S+)/gm)].map((m) => m[1]);
}

const problem = (runtime: Runtime, why: string): RuntimeProblem => ({ runtime, why, fix: fixFor(runtime, why) });
