// The cookbook's Debian container: packages installed by mmdebstrap (minbase bookworm),
// the system's changes on top (a user added by useradd, the docs removed), then the app,
// whose /init counts the installed packages; run in a chroot, in a VM and in Docker, and
// packed as a three-layer image: the installed base, the system's diff, the app's diff;
// and as an image of layers split by package.
import { bootstrap, fs, gz, image, layer, packageLayers, run } from "../lib/mod.ts";

export const base = bootstrap("debootstrap", { suite: "bookworm", variant: "minbase" });

// /etc/shadow's "last password change" of the app user: a fixed day, for reproducible layers.
const EPOCH = "1704067200"; // 2024-01-01

// The system's part, as a Dockerfile puts it before the app's: a RUN useradd, chrooted in
// the tree as root in a user namespace, and the docs removed. Its own target, so an edit
// of the app below does not run it again.
export const system = fs("system", async (root) => {
  await root.from(base);
  // The home is made here, owned by app in the layer whoever builds (a rootless build maps
  // one uid only, so useradd could not chown it).
  await root.run(["useradd", "--uid", "1000", "--user-group", "--no-create-home", "--no-log-init", "--shell", "/bin/sh", "app"], {
    env: { SOURCE_DATE_EPOCH: EPOCH },
  });
  await root.mkdir("/home/app", 0o750);
  await root.chown("/home/app", 1000, 1000);
  // Documentation nobody reads in a container: a whiteout in system.layer.
  await root.remove("/usr/share/doc", { recursive: true });
});

// The app: what changes. A snapshot of system, which is a snapshot of the base.
export const debian = fs("debian", async (root) => {
  await root.from(system);
  await root.write("/init", "#!/bin/sh\ndpkg -l | grep -c ^ii\n", 0o755); // installed packages
});

// debian.image's layers: debootstrap, system diffed against it, the app diffed against
// system. As with a Dockerfile, an /init edit makes a new top layer and nothing else.
export const debianImage = image("debian", [layer(base), layer(system, base), layer(debian, system)]);

// The same tree as layers split by package (at most 10): a package update changes its
// own layer (or one of three overflow layers) and the top one (dpkg's database, /init and
// every file no package owns), so pullers download that, not a new 170 MB base.
export const debianPackages = image("debian-packages", [packageLayers(debian, { budget: 10 })]);

export default [run.local(debian), run.kvm(debian), run.docker(debianImage), gz(debianImage)];
