/**
 * crecipe's second entry point, for the CLI and for tools that look at a build rather
 * than declare one (`import … from "crecipe/inspect"`): the registry of declared targets,
 * the engine's errors, the failure report, and the CLI's other verbs (--list, --graph,
 * --why, --dry-run, --clean). Recipes need only `crecipe` (lib/mod.ts).
 *
 * ```ts
 * import { declared, listTargets } from "crecipe/inspect";
 * await import("./recipes/simple.ts");
 * console.log(declared().map((n) => n.name), await listTargets("out"));
 * ```
 *
 * @module
 */
export { currentContext } from "./engine/context.ts";
export { BuildError, CommandError, CrecipeError, CycleError, InterruptedError, OutDirError } from "./engine/errors.ts";
export { buildsStarted, declared, isNode, lookup } from "./engine/node.ts";
export { formatError, formatFailure, type Reporter } from "./engine/report.ts";
export { thrownAt } from "./engine/site.ts";
export { type SourceIndex, type SourceRef, useSourceIndex } from "./engine/sources.ts";
export { layout, outDirFailure } from "./engine/state.ts";
export { clean, describeGraph, explain, listTargets, resolveTargets } from "./engine/verbs.ts";
export { memoryFor } from "./run/kvm.ts";
export { hostMirror } from "./debian/bootstrap.ts";
export { sourceDateEpoch } from "./targets/layer.ts";
export { type ChunkIndex, chunkIndex, decodeChunkIndex, encodeChunkIndex } from "./formats/chunks.ts";
export { formatBytes } from "./net/fetch.ts";
export { type BuildEvent, type CriticalPath, EVENTS_VERSION, type EventSink, fanOut, type FailureFields, jsonLines, TraceRecorder, writeTrace } from "./engine/events.ts";
