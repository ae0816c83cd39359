// The cookbook's Debian container: packages installed by mmdebstrap (minbase bookworm),
// an app on top whose /init counts the installed packages; run in a chroot, in a VM and
// in Docker, and packed as a two-layer image (the installed base, then the app's diff).
import { bootstrap, fs, gz, image, layer, run } from "../lib/mod.ts";

export const base = bootstrap("debootstrap", { suite: "bookworm", variant: "minbase" });

export const debian = fs("debian", async (root) => {
  await root.from(base);
  await root.write("/init", "#!/bin/sh\ndpkg -l | grep -c ^ii\n", 0o755); // installed packages
});

// debian.image.layers: debootstrap, then debian diffed against it (debian.diffbase).
export const debianImage = image("debian", [layer(base), layer(debian, base)]);

export default [run.local(debian), run.kvm(debian), run.docker(debianImage), gz(debianImage)];
