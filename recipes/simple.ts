// The cookbook's first container: hello, a shell and busybox; then the same with the
// shared libraries it needs; run in a chroot, in a VM, in Docker and in runc, and packed as an image.
import { $, file, fs, gz, here, image, layer, run } from "../lib/mod.ts";
import { existsSync } from "node:fs";

export const hello = file("hello", async (out) => {
  await $`cc -O2 -o ${out} ${here("hello.c")}`; // dynamically linked, on purpose
});

export const simple = fs("simple", async (root) => {
  await root.copyIn([hello, "/bin/sh"], "/bin/");
  if (existsSync("/bin/busybox")) await root.copyIn("/bin/busybox", "/bin/");
  await root.symlink("bin/hello", "/init");
});

export const libs = fs("libs", async (root) => {
  await root.from(simple);
  await root.addSharedLibraries();
});

// simple.image.layers: the libraries (libs diffed against simple) at the bottom, simple on top.
export const simpleImage = image("simple", [layer(libs, simple), layer(simple)]);

export default [run.local(libs), run.kvm(libs), run.docker(simpleImage), run.runc(simpleImage), gz(simpleImage)];
