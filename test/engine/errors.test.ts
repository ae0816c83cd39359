/** describeFailure in-process (engine/errors.ts): what a failed builder's report says, by what it threw. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { describe, it } from "node:test";
import { ProcessOutput } from "zx";
import { CommandError, CrecipeError, describeFailure } from "../../lib/engine/errors.ts";

describe("describeFailure", () => {
  it("a CommandError says how the command ended, and names the builder's last command", () => {
    assert.deepEqual(describeFailure(new CommandError(3), "make all"), {
      message: "command failed with exit code 3",
      command: "make all",
      exitCode: 3,
      signal: undefined,
      fix: undefined,
    });
  });

  it("a CommandError with its own message and command keeps them, with its exit code and fix", () => {
    const error = new CommandError(2, { message: "mmdebstrap failed with exit code 2", command: "mmdebstrap bookworm", fix: "see the log" });
    assert.deepEqual(describeFailure(error, "an earlier command"), {
      message: "mmdebstrap failed with exit code 2",
      command: "mmdebstrap bookworm",
      exitCode: 2,
      signal: undefined,
      fix: "see the log",
    });
  });

  it("a CommandError without an exit code says so", () => {
    assert.equal(describeFailure(new CommandError(null), undefined).message, "command failed without an exit code");
  });

  it("a command killed by SIGKILL suggests the out-of-memory killer", () => {
    const failure = describeFailure(new CommandError(null, { signal: "SIGKILL" }), "cc big.c");
    assert.equal(failure.message, "command killed by SIGKILL");
    assert.equal(failure.signal, "SIGKILL");
    assert.match(failure.fix ?? "", /out-of-memory killer/);
  });

  it("zx's ProcessOutput is described by its exit code", () => {
    const failure = describeFailure(new ProcessOutput(5, null, "", "", "", "exit 5"), "false");
    assert.deepEqual([failure.message, failure.command, failure.exitCode], ["command failed with exit code 5", "false", 5]);
  });

  it("a CrecipeError says its first line and its fix, and no command", () => {
    const failure = describeFailure(new CrecipeError("no kernel to boot\nmore detail", { fix: "install one" }), "qemu");
    assert.deepEqual(failure, { message: "no kernel to boot", command: undefined, fix: "install one" });
  });

  it("a system error names the file", () => {
    let thrown: unknown;
    try {
      fs.readFileSync("/no/such/file");
    } catch (error) {
      thrown = error;
    }
    assert.equal(describeFailure(thrown, undefined).message, "no such file or directory: cannot open /no/such/file");
  });

  it("an exception in a builder's code gives the line it was thrown at", () => {
    const failure = describeFailure(new TypeError("x is not a function"), undefined);
    assert.equal(failure.message, "x is not a function");
    assert.match(failure.where ?? "", /^test\/engine\/errors\.test\.ts:\d+:\d+$/);
  });
});
