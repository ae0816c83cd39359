// dappdeps' idea with crecipe's helpers: a tool tree (a static busybox) mounted into one
// build step of a tree that has no shell of its own, and gone afterwards: the image ships
// hello, its libraries and what the step made, plus the empty mount point /.tools.
import { fs, image, layer, run } from "../lib/mod.ts";
import { hello } from "./simple.ts";

// busybox-static loads nothing, so it runs in any tree it is mounted into.
export const tools = fs("tools", async (root) => {
  await root.copyIn("/bin/busybox", "/bin/");
  await root.symlink("busybox", "/bin/sh");
});

export const app = fs("app", async (root) => {
  await root.copyIn(hello, "/bin/");
  await root.symlink("bin/hello", "/init");
  await root.addSharedLibraries();
  // The build step: busybox's shell and applets, from the mount, inside the app's tree.
  await root.runWith(tools, "/.tools", ["sh", "-c", "mkdir -p /etc && cd / && sha256sum bin/hello > etc/hello.sha256"], {
    env: { PATH: "/.tools/bin" },
  });
});

export const appImage = image("app", [layer(app)]);

export default [run.docker(appImage), run.runc(appImage)];
