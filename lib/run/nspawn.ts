/**
 * run.nspawn(bundle): the bundle run by `systemd-nspawn --oci-bundle` (systemd ≥ 242),
 * as root only. nspawn writes into the root it is given whatever config.json says, so it
 * always runs over a throw-away overlay (container.ts), with `--read-only` when asked;
 * it reads only ociVersion 1.0.0, which is what crecipe writes. Output and failures as
 * run.runc.
 *
 * ```ts
 * export const inNspawn = run.nspawn(simpleImage);
 * ```
 */
import { bundleRunner } from "./runc.ts";

export const nspawn = bundleRunner("nspawn");
