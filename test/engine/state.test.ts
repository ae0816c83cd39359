/** readState in-process (engine/state.ts): a state file of any shape is read, never a crash. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { layout, readState, STATE_VERSION, stateFile, type TargetState, writeState } from "../../lib/engine/state.ts";
import { tempDir } from "../helpers.ts";

const outDir = path.join(tempDir(), "out");
const l = layout(outDir);

const state: TargetState = {
  v: STATE_VERSION,
  identity: "i",
  stamp: "s",
  output: "file",
  sig: "file:1:2:3:4",
  outHash: null,
  precious: false,
  value: { any: ["json"] },
  deps: [{ target: "up", stamp: "u" }, { file: "/etc/hostname", hash: null, sig: "missing" }],
  builtAt: "2026-01-01T00:00:00.000Z",
  seconds: 0.5,
};

/** Write `text` as the state file of `name`, and read it back. */
function readText(name: string, text: string) {
  fs.mkdirSync(path.dirname(stateFile(l, name)), { recursive: true });
  fs.writeFileSync(stateFile(l, name), text);
  return readState(l, name);
}

describe("readState", () => {
  it("reads back what writeState wrote", () => {
    writeState(l, "round-trip", state);
    assert.deepEqual(readState(l, "round-trip"), { ok: true, state });
  });

  it("a target without a state file is missing", () => {
    assert.deepEqual(readState(l, "never"), { ok: false, reason: "missing" });
  });

  it("a state file cut short is corrupt, with the parser's words", () => {
    const read = readText("cut", JSON.stringify(state).slice(0, 40));
    assert.equal(read.ok || read.reason, "corrupt");
    assert.match(!read.ok && read.reason === "corrupt" ? read.detail : "", /JSON/);
  });

  it("a state of another version is older, with that version", () => {
    assert.deepEqual(readText("older", JSON.stringify({ ...state, v: 1 })), { ok: false, reason: "older", version: 1 });
  });

  it("valid JSON of the wrong shape is corrupt, naming the field", () => {
    assert.deepEqual(readText("array", "[]"), { ok: false, reason: "corrupt", detail: "not a JSON object" });
    assert.deepEqual(readText("stamp", JSON.stringify({ ...state, stamp: 7 })), { ok: false, reason: "corrupt", detail: "stamp is not a string" });
    assert.deepEqual(readText("manifest", JSON.stringify({ ...state, output: "dir", manifest: "../x.list" })), { ok: false, reason: "corrupt", detail: "manifest is not a file name" });
  });

  it("a dependency that is neither a target nor a host file is corrupt, naming its index", () => {
    const read = readText("dep", JSON.stringify({ ...state, deps: [...state.deps, { target: "t" }] }));
    assert.deepEqual(read, { ok: false, reason: "corrupt", detail: "deps[2] is neither a target nor a host file" });
  });
});
