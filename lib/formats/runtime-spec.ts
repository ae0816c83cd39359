/**
 * An OCI runtime bundle's config.json, pure: the same inputs give the same bytes.
 *
 * It is what `runc spec` (and `runc spec --rootless`) writes, made safe by default:
 * the root file system read-only, a tmpfs on /tmp, no host path mounted, the three
 * capabilities runc's own template keeps (AUDIT_WRITE, KILL, NET_BIND_SERVICE),
 * no new privileges, and namespaces for everything including the network (loopback
 * only, as `docker run --network=none`). /sys is a fresh sysfs, not a bind of the host's:
 * a container that owns its network namespace may mount one, even rootless.
 *
 * ociVersion is 1.0.0: runc and crun read any 1.0.x, and systemd-nspawn (252) refuses
 * anything else ("OCI bundle version not supported: 1.0.2"; Fossil's container doc met
 * the same with 1.0.2-dev). Every field used here is in 1.0.0.
 */

export const OCI_RUNTIME_VERSION = "1.0.0";

export interface BindMount {
  /** Absolute host path. */
  source: string;
  /** Absolute path inside the container. */
  destination: string;
  /** Default true: the container cannot write to it. */
  readOnly?: boolean;
}

export interface RuntimeSpecOptions {
  /** The program and its arguments (argv[0] is looked up in the container's PATH by the runtime). */
  args: string[];
  /** KEY=value strings (default: PATH only). */
  env?: string[];
  /** Working directory inside the container (default /). */
  cwd?: string;
  /** Who the program runs as inside the container (default 0:0). */
  user?: { uid: number; gid: number };
  /**
   * Rootless: the host user and group the container's root is (one id each, as
   * `runc spec --rootless` maps them). Absent: no user namespace, for a runtime run as root.
   */
  idMap?: { uid: number; gid: number };
  /** The root file system read-only (default true). */
  readOnly?: boolean;
  /** The bundle-relative or absolute path of the root file system (default "rootfs"). */
  rootPath?: string;
  hostname?: string;
  /** Host paths to mount in (none by default). */
  binds?: BindMount[];
}

export const DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];

/** runc's template keeps these three; Docker's default set has fourteen. */
export const CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/** The config.json document (a plain object, keys in the order written). */
export function runtimeSpec(options: RuntimeSpecOptions): Record<string, unknown> {
  if (!options.args.length) throw new Error("a runtime config needs a program to run (args is empty)");
  const rootless = options.idMap !== undefined;
  const capabilities = { bounding: CAPABILITIES, effective: CAPABILITIES, permitted: CAPABILITIES, ambient: CAPABILITIES };
  const mounts: Record<string, unknown>[] = [
    { destination: "/proc", type: "proc", source: "proc" },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    // gid=5 (tty) exists only when the host's ids are not remapped.
    { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", ...(rootless ? [] : ["gid=5"])] },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
    ...(options.binds ?? []).map((b) => ({
      destination: b.destination,
      type: "bind",
      source: b.source,
      options: ["rbind", "nosuid", "nodev", b.readOnly === false ? "rw" : "ro"],
    })),
  ];
  const namespaces = ["pid", "network", "ipc", "uts", "mount", ...(rootless ? ["user"] : [])].map((type) => ({ type }));
  const linux: Record<string, unknown> = {};
  if (rootless) {
    linux.uidMappings = [{ containerID: 0, hostID: options.idMap!.uid, size: 1 }];
    linux.gidMappings = [{ containerID: 0, hostID: options.idMap!.gid, size: 1 }];
  }
  Object.assign(linux, {
    namespaces,
    maskedPaths: ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
  });
  return {
    ociVersion: OCI_RUNTIME_VERSION,
    process: {
      terminal: false,
      user: { uid: options.user?.uid ?? 0, gid: options.user?.gid ?? 0 },
      args: options.args,
      env: options.env ?? DEFAULT_ENV,
      cwd: options.cwd ?? "/",
      capabilities,
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: options.rootPath ?? "rootfs", readonly: options.readOnly ?? true },
    hostname: options.hostname ?? "crecipe",
    mounts,
    linux,
  };
}

/** config.json's bytes: two-space indented JSON and a newline, as `runc spec` writes it (with tabs). */
export function runtimeConfig(options: RuntimeSpecOptions): Buffer {
  return Buffer.from(JSON.stringify(runtimeSpec(options), null, 2) + "\n");
}

/** A hostname the runtimes accept: the name's letters, digits and dashes, at most 63. */
export function hostnameOf(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63) || "crecipe";
}
