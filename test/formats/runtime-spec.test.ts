/**
 * config.json as crecipe writes it: valid by the runtime-spec's own schema, safe by
 * default (read-only root, no host mounts, three capabilities), rootless with one id
 * mapped, the same bytes for the same inputs.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CAPABILITIES, runtimeConfig, runtimeSpec } from "../../lib/formats/runtime-spec.ts";
import { runtimeConfigErrors } from "../oci-runtime-schemas.ts";

type Spec = { root: { readonly: boolean }; mounts: { destination: string; type: string; source: string; options?: string[] }[]; linux: { namespaces: { type: string }[]; uidMappings?: unknown }; process: { capabilities: Record<string, string[]>; noNewPrivileges: boolean; args: string[] } };

describe("runtime-spec config.json", () => {
  it("is valid by the runtime-spec schema, for root and for an ordinary user", () => {
    assert.deepEqual(runtimeConfigErrors(runtimeSpec({ args: ["/init"] })), []);
    assert.deepEqual(runtimeConfigErrors(runtimeSpec({ args: ["/init"], idMap: { uid: 1001, gid: 1001 }, user: { uid: 0, gid: 0 }, cwd: "/srv", env: ["A=b"] })), []);
    assert.deepEqual(runtimeConfigErrors(runtimeSpec({ args: ["sh"], binds: [{ source: "/opt/tools", destination: "/.tools" }] })), []);
    assert.notDeepEqual(runtimeConfigErrors({ ociVersion: "1.0.0", root: 3 }), [], "the validator does reject a bad document");
  });

  it("is safe by default: read-only root, a tmpfs /tmp, no host path, few capabilities, no new privileges", () => {
    const spec = runtimeSpec({ args: ["/init"] }) as unknown as Spec;
    assert.equal(spec.root.readonly, true);
    assert.ok(spec.mounts.some((m) => m.destination === "/tmp" && m.type === "tmpfs"));
    assert.deepEqual(spec.mounts.filter((m) => m.type === "bind" || m.source.startsWith("/")), [], "no host mounts");
    assert.deepEqual(spec.mounts.map((m) => m.destination), ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/tmp"]);
    assert.deepEqual(spec.process.capabilities.bounding, CAPABILITIES);
    assert.equal(spec.process.noNewPrivileges, true);
    assert.ok(spec.linux.namespaces.some((n) => n.type === "network"), "loopback only, as docker run --network=none");
    assert.equal(spec.linux.uidMappings, undefined, "no user namespace for a runtime run as root");
  });

  it("an ordinary user's maps the container's root to that user, one id", () => {
    const spec = runtimeSpec({ args: ["/init"], idMap: { uid: 1001, gid: 1002 } }) as unknown as Spec & { linux: { gidMappings: unknown } };
    assert.deepEqual(spec.linux.uidMappings, [{ containerID: 0, hostID: 1001, size: 1 }]);
    assert.deepEqual(spec.linux.gidMappings, [{ containerID: 0, hostID: 1002, size: 1 }]);
    assert.ok(spec.linux.namespaces.some((n) => n.type === "user"));
    assert.ok(!spec.mounts.find((m) => m.destination === "/dev/pts")!.options!.includes("gid=5"), "gid 5 is not mapped");
  });

  it("the same inputs give the same bytes; ociVersion is 1.0.0, which nspawn reads", () => {
    const a = runtimeConfig({ args: ["/init", "x"], hostname: "h" });
    assert.ok(a.equals(runtimeConfig({ args: ["/init", "x"], hostname: "h" })));
    assert.equal(JSON.parse(a.toString()).ociVersion, "1.0.0");
    assert.throws(() => runtimeSpec({ args: [] }), /needs a program/);
  });
});
