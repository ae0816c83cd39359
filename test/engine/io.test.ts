/**
 * A large output file is written and hashed by a thread reading shared memory: a full
 * disk that thread meets is the write's system error, with the message and fix a write
 * on the building thread would get.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { describe, it } from "node:test";
import { describeSystemError } from "../../lib/engine/errors.ts";
import { OutputFile } from "../../lib/engine/io.ts";
import { THREAD_BYTES } from "../../lib/engine/threads.ts";
import { isRoot, tempDir, withSmallDisk } from "../helpers.ts";
import { pseudoRandom } from "../net/helpers.ts";

describe("an output file on a full disk", { skip: isRoot ? false : "mounting a small tmpfs needs root" }, () => {
  it("is the write's system error, with its fix, when the hashing thread meets it", () => {
    withSmallDisk(tempDir(), "2m", (small) => {
      const out = new OutputFile(path.join(small, "out"), THREAD_BYTES + 1); // a hashing thread writes it
      let error: unknown;
      try {
        for (let i = 0; i < 8; i++) out.write(pseudoRandom(1 << 20, `full${i}`));
        out.close();
      } catch (caught) {
        error = caught;
        out.abandon();
      }
      assert.ok(error, "a 2 MiB disk cannot take 8 MiB");
      const said = describeSystemError(error);
      assert.match(said?.message ?? String(error), /^no space left on the device: cannot write /);
      assert.match(said?.fix ?? "", /free some space/);
    });
  });
});
