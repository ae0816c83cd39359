/**
 * `crecipe/net`: serving a directory and fetching a file by the chunks it shares with
 * older versions, for scripts that only move files and need not load the build engine
 * (this entry point loads a third of what `crecipe` does; `crecipe fetch` and
 * `crecipe serve` use it). The same functions are also exported by `crecipe`.
 *
 * ```ts
 * import { fetchChunked } from "crecipe/net";
 * const report = await fetchChunked("http://build:8000/app.layer.gz", { out: "app.layer.gz", seeds: ["old/app.layer.gz"] });
 * ```
 * @module
 */
export { CrecipeError, InterruptedError } from "./engine/errors.ts";
export { formatError } from "./engine/report.ts";
export { fetchChunked, FetchError, type FetchOptions, type FetchProgress, type FetchReport, formatBytes } from "./net/fetch.ts";
export { serve, type ServeOptions, type Serving } from "./net/serve.ts";
