/**
 * Debian trees: bootstrap(name, options) installs a suite with mmdebstrap (minbase
 * bookworm by default) and unpacks it into out/NAME/ with the owners recorded, not
 * applied, so root and an unprivileged user (mmdebstrap's unshare mode) get the same
 * layers. With SOURCE_DATE_EPOCH (crecipe passes its own, 0 by default) mmdebstrap's
 * tarball is bit-reproducible; apt caches and logs are removed from the result.
 *
 * mmdebstrap, not debootstrap: minbase took 35–38 s here with either mode, debootstrap
 * about twice that, and only mmdebstrap installs rootless and reproducibly.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CommandError } from "../engine/errors.ts";
import { type Node, target } from "../engine/node.ts";
import { $ } from "../runtime.ts";
import { cacheDir, readTextOr, requireTool } from "../host.ts";
import { sourceDateEpoch } from "../targets/layer.ts";
import { untar } from "../tree/untar.ts";
import type { TreeMeta } from "../tree/meta.ts";

/** What bootstrap() installs, and from where. */
export interface BootstrapOptions {
  /** Debian suite (default bookworm). */
  suite?: string;
  /** mmdebstrap variant (default minbase). */
  variant?: string;
  /** Packages to install besides the variant's. */
  include?: string[];
  /** Packages to purge after the install (apt-get purge inside the new tree). */
  exclude?: string[];
  /** dpkg path-exclude patterns: files never unpacked, e.g. "/usr/share/doc/*". */
  pathExclude?: string[];
  /** Archive components (default ["main"]). */
  components?: string[];
  /** Mirror URL (default: the host's first Debian source in /etc/apt, else mmdebstrap's default). */
  mirror?: string;
}

/** The host's Debian mirror, from /etc/apt/sources.list(.d), if there is one. */
export function hostMirror(): string | undefined {
  const texts: string[] = [];
  for (const file of ["/etc/apt/sources.list", ...listDir("/etc/apt/sources.list.d")]) {
    if (/\.(list|sources)$/.test(file)) texts.push(readTextOr(file));
  }
  for (const text of texts) {
    const deb822 = text.match(/^URIs:\s*(\S+\/debian)\/?\s*$/m);
    if (deb822) return deb822[1];
    const oneLine = text.match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+/m);
    if (oneLine) return oneLine[1];
  }
  return undefined;
}

/**
 * A Debian tree installed by mmdebstrap. Precious: --clean keeps it (it is slow).
 *
 * ```ts
 * export const base = bootstrap("debootstrap", { suite: "bookworm", variant: "minbase" });
 * ```
 */
export function bootstrap(name: string, options: BootstrapOptions = {}): Node<TreeMeta> {
  const settings = {
    suite: options.suite ?? "bookworm",
    variant: options.variant ?? "minbase",
    include: options.include ?? [],
    exclude: options.exclude ?? [],
    pathExclude: options.pathExclude ?? [],
    components: options.components ?? ["main"],
    mirror: options.mirror ?? hostMirror() ?? null,
    epoch: sourceDateEpoch(),
  };
  return target(name, async (ctx) => {
    const mmdebstrap = await requireTool("mmdebstrap", ctx.name);
    const rootless = process.getuid?.() !== 0;
    if (rootless) await requireTool("newuidmap", ctx.name);
    // Downloaded .debs are kept between builds (an apt archive cache, outside the out dir).
    const archives = cacheDir("apt-archives", `${settings.suite}-${process.arch}`);
    fs.mkdirSync(archives, { recursive: true });
    const tarball = path.join(ctx.tmp, "rootfs.tar");
    const args = [
      `--variant=${settings.variant}`,
      `--mode=${rootless ? "unshare" : "root"}`,
      `--components=${settings.components.join(",")}`,
      "--skip=essential/unlink",
      // Setup hooks run outside the namespace: in unshare mode this directory is then owned
      // by the outer user, so the customize hook (inside) gives it back to root.
      `--setup-hook=mkdir -p "$1"/var/cache/apt/archives/`,
      `--setup-hook=sync-in ${archives} /var/cache/apt/archives/`,
      `--customize-hook=sync-out /var/cache/apt/archives ${archives}`,
      // Churn that differs from build to build, or that no image needs.
      `--customize-hook=rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* ` +
        `"$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/log/bootstrap.log ` +
        `"$1"/var/cache/ldconfig/aux-cache "$1"/var/lib/dpkg/*-old "$1"/var/cache/debconf/*-old; : > "$1"/etc/machine-id; ` +
        `rm -f "$1"/var/cache/apt/archives/lock; chown 0:0 "$1"/var/cache/apt/archives`,
    ];
    if (settings.include.length) args.push(`--include=${settings.include.join(",")}`);
    for (const pattern of settings.pathExclude) args.push(`--dpkgopt=path-exclude=${pattern}`);
    if (settings.exclude.length) {
      // Before the clean-up hook (hooks run in order): the purge's logs go with the rest.
      args.splice(args.findIndex((a) => a.startsWith("--customize-hook=rm -rf")), 0,
        `--customize-hook=chroot "$1" apt-get purge --yes ${settings.exclude.join(" ")}`);
    }
    args.push(settings.suite, tarball);
    if (settings.mirror) args.push(settings.mirror);
    const result = await $({ nothrow: true, env: { ...process.env, SOURCE_DATE_EPOCH: String(settings.epoch) } })`${mmdebstrap} ${args}`;
    if (result.exitCode !== 0) {
      const subuid = /newuidmap|subuid|unshare/i.test(result.stderr);
      throw new CommandError(result.exitCode, {
        message: `mmdebstrap failed with exit code ${result.exitCode}`,
        target: ctx.name,
        signal: result.signal ?? undefined,
        fix: subuid
          ? `give this user subordinate ids (sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER) and install uidmap`
          : "see the log above (the network? a package name in include or exclude?)",
      });
    }
    fs.mkdirSync(ctx.out, { mode: 0o755 });
    const meta = await untar(tarball, ctx.out);
    fs.rmSync(tarball);
    return meta;
  }, { kind: "debian", shared: true, precious: true, options: settings, description: `Debian ${settings.suite} (${settings.variant}) by mmdebstrap` });
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}
