/** WaitGraph in-process (engine/cycles.ts): cycles are found as waits are recorded. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WaitGraph } from "../../lib/engine/cycles.ts";
import { CycleError } from "../../lib/engine/errors.ts";

/** Names ranked by the order they were first asked for: a, b, c, … */
const alphabetical = (name: string) => name.charCodeAt(0);

/** The CycleError `add` throws, or undefined when it records the wait. */
function addOrCycle(graph: WaitGraph, from: string, to: string): CycleError | undefined {
  try {
    graph.add(from, to, alphabetical);
    return undefined;
  } catch (error) {
    assert.ok(error instanceof CycleError, String(error));
    return error;
  }
}

describe("WaitGraph", () => {
  it("records waits that close no loop, and lists them as edges", () => {
    const graph = new WaitGraph();
    assert.equal(addOrCycle(graph, "a", "b"), undefined);
    assert.equal(addOrCycle(graph, "b", "c"), undefined);
    assert.equal(addOrCycle(graph, "a", "c"), undefined, "a diamond is no cycle");
    assert.deepEqual(graph.edges(), [["a", "b"], ["a", "c"], ["b", "c"]]);
  });

  it("a target that waits for itself is a cycle of one", () => {
    const error = addOrCycle(new WaitGraph(), "a", "a");
    assert.deepEqual(error?.cycle, ["a", "a"]);
    assert.equal(error?.message, "dependency cycle: a → a");
  });

  it("a wait that closes a loop is a cycle, named from the target asked for first", () => {
    const graph = new WaitGraph();
    addOrCycle(graph, "b", "c");
    addOrCycle(graph, "c", "a");
    const error = addOrCycle(graph, "a", "b");
    assert.deepEqual(error?.cycle, ["a", "b", "c", "a"]);
    assert.equal(error?.target, "a");
  });

  it("the closing wait is not recorded", () => {
    const graph = new WaitGraph();
    addOrCycle(graph, "a", "b");
    addOrCycle(graph, "b", "a");
    assert.deepEqual(graph.edges(), [["a", "b"]]);
  });

  it("a wait removed no longer closes a loop", () => {
    const graph = new WaitGraph();
    addOrCycle(graph, "a", "b");
    graph.remove("a", "b");
    assert.equal(addOrCycle(graph, "b", "a"), undefined);
    assert.deepEqual(graph.edges(), [["b", "a"]]);
  });
});
