/**
 * Running an OCI bundle with runc, crun or systemd-nspawn, never writing to it.
 *
 * A run is writable and thrown away, as `docker run` is: the runtime gets a copy of the
 * bundle's config.json whose root is an overlayfs mount of the bundle's rootfs/ (lower,
 * read-only) under a scratch upper directory, mounted in a mount namespace of its own
 * (as an ordinary user, a user namespace too: `unshare -rm`, Linux ≥ 5.11). With
 * `readOnly` the runtime gets rootfs/ itself, mounted read-only (the bundle's own
 * config says so), and no overlay: writes fail inside, as Fossil's container doc
 * recommends. systemd-nspawn writes into its root whatever its config says (/etc, /run,
 * /var, and files the program makes), so it always runs on the overlay, with
 * `--read-only` when asked.
 *
 * Whether the container started is told apart from the program failing: runc and crun
 * write their --pid-file once the container exists.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { removeTree } from "../engine/io.ts";
import { CrecipeError } from "../engine/errors.ts";
import { requireTool, which } from "../host.ts";
import { currentContext } from "../engine/context.ts";
import { childProcess } from "../runtime.ts";

/** The runtimes that run an OCI bundle directory. */
export type BundleRuntime = "runc" | "crun" | "nspawn";

export const RUNTIME_TOOLS: Record<BundleRuntime | "podman", string> = { runc: "runc", crun: "crun", nspawn: "systemd-nspawn", podman: "podman" };
/** The Debian package of each. */
export const RUNTIME_PACKAGES: Record<BundleRuntime | "podman", string> = { runc: "runc", crun: "crun", nspawn: "systemd-container", podman: "podman" };

export interface LaunchOptions {
  /** Root mounted read-only and no overlay (nspawn: --read-only, still over an overlay). */
  readOnly?: boolean;
  /** Replace config.json's process.args. */
  command?: string[];
  /** Host directories to bind-mount read-only: container path → host path. */
  binds?: { source: string; destination: string }[];
}

export interface Launched {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Whether the container came to exist (undefined: the runtime does not say). */
  started: boolean | undefined;
  /** The overlay could not be mounted (exit 97 of the wrapper). */
  noOverlay: boolean;
}

/** Run the bundle in `bundleDir` with `runtime`; scratch files go in a temp dir removed afterwards. */
export async function launch(runtime: BundleRuntime, bundleDir: string, options: LaunchOptions = {}): Promise<Launched> {
  const bin = await which(RUNTIME_TOOLS[runtime]);
  if (!bin) throw new CrecipeError(`${RUNTIME_TOOLS[runtime]} is not installed`, { target: currentContext()?.name, fix: `sudo apt-get install ${RUNTIME_PACKAGES[runtime]}` });
  // Short paths: runc keeps sockets under --root, and a socket path has 108 bytes.
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `crecipe-${runtime}-`));
  try {
    const readOnly = Boolean(options.readOnly);
    const overlay = !readOnly || runtime === "nspawn";
    const rootless = process.getuid?.() !== 0;
    const spec = JSON.parse(fs.readFileSync(path.join(bundleDir, "config.json"), "utf8"));
    const merged = path.join(scratch, "merged");
    spec.root = { path: overlay ? merged : path.join(bundleDir, spec.root?.path ?? "rootfs"), readonly: readOnly };
    if (options.command) spec.process.args = options.command;
    if (options.binds?.length) {
      spec.mounts.push(...options.binds.map((b) => ({ destination: b.destination, type: "bind", source: b.source, options: ["rbind", "nosuid", "nodev", "ro"] })));
    }
    if (overlay && rootless && spec.linux?.uidMappings) {
      // Inside `unshare -r` this user is root: the container's root maps to that root.
      spec.linux.uidMappings = [{ containerID: 0, hostID: 0, size: 1 }];
      spec.linux.gidMappings = [{ containerID: 0, hostID: 0, size: 1 }];
    }
    const runBundle = path.join(scratch, "bundle");
    fs.mkdirSync(runBundle);
    fs.writeFileSync(path.join(runBundle, "config.json"), JSON.stringify(spec, null, 2));
    const pidFile = path.join(scratch, "pid");
    const id = `crecipe-${process.pid}-${path.basename(scratch).slice(-6)}`;
    const argv = runtime === "nspawn"
      ? [bin, `--oci-bundle=${runBundle}`, "--quiet", "--register=no", "--keep-unit", ...(readOnly ? ["--read-only"] : [])]
      : [bin, "--root", path.join(scratch, "state"), "run", "--bundle", runBundle, "--pid-file", pidFile, id];
    const env: Record<string, string> = { ...process.env as Record<string, string> };
    // nspawn mounts every cgroup v1 controller for the guest on a hybrid host and fails
    // where one is missing; the guest of a crecipe run needs none: give it cgroup v2 alone.
    if (runtime === "nspawn" && fs.existsSync("/sys/fs/cgroup/unified")) env.SYSTEMD_NSPAWN_UNIFIED_HIERARCHY = "1";
    let result;
    if (overlay) {
      const dirs = ["upper", "work", "merged"].map((d) => path.join(scratch, d));
      for (const d of dirs) fs.mkdirSync(d);
      // $1 lower, $2 upper, $3 work, $4 merged, then the runtime's argv.
      const script = 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" || exit 97; ' +
        // nspawn refuses a root without /usr ("does not look like an OS tree") and, read-only,
        // cannot make the directories it mounts on: they are made in the throw-away layer.
        (runtime === "nspawn" ? 'for d in usr run etc var root; do [ -e "$4/$d" ] || mkdir "$4/$d"; done; ' : "") +
        'shift 4; exec "$@"';
      const unshare = await requireTool("unshare");
      result = await capture([unshare, rootless ? "-rm" : "-m", "sh", "-c", script, "sh", path.join(bundleDir, "rootfs"), ...dirs, ...argv], env);
    } else {
      result = await capture(argv, env);
    }
    const exitCode = result.exitCode;
    return {
      exitCode,
      stdout: result.stdout,
      stderr: result.stderr,
      started: runtime === "nspawn" ? undefined : fs.existsSync(pidFile),
      noOverlay: overlay && exitCode === 97 && !fs.existsSync(pidFile),
    };
  } finally {
    removeTree(scratch); // overlayfs leaves work/work with mode 000
  }
}

/**
 * Run `argv`, its output captured. Not through zx's `$`: loading zx costs a cold run
 * target more than runc does. Inside a builder the command and stderr go to its log and
 * the child is killed on Ctrl-C, as `$` does it.
 */
function capture(argv: string[], env: Record<string, string>): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const ctx = currentContext();
  ctx?.noteCommand(argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" "));
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(argv[0], argv.slice(1), { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const untrack = child.pid && ctx ? ctx.trackChild(child.pid) : () => {};
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => stdout.push(d));
    child.stderr!.on("data", (d: Buffer) => stderr.push(d));
    child.on("error", (error) => (untrack(), reject(error)));
    child.on("close", (code, signal) => {
      untrack();
      const err = Buffer.concat(stderr).toString();
      if (err) ctx?.log(err);
      resolve({ exitCode: code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0), stdout: Buffer.concat(stdout).toString(), stderr: err });
    });
  });
}

/** A runtime's complaint as one line: runc's `time=… level=error msg="…"` unwrapped, the last line that says something. */
export function runtimeMessage(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const line = lines.filter((l) => !/^Attempted to remove disk file system/.test(l)).at(-1) ?? "";
  const msg = line.match(/msg="((?:[^"\\]|\\.)*)"/);
  return msg ? JSON.parse(`"${msg[1]}"`) : line.replace(/^Error: /, "");
}
