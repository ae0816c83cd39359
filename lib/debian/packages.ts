/**
 * packageLayers(fs, { budget }): a Debian tree as layers split by package, for image().
 *
 * Every path is attributed to its package from dpkg's own database in the tree
 * (var/lib/dpkg/status, info/PACKAGE.list, diversions), packages are grouped by source
 * package, and the largest groups get layers of their own within the budget; the other
 * groups share an overflow layer, and dpkg's database with every path no package owns
 * (what the recipe wrote, generated configuration, alternatives) goes in the top layer.
 * So a package that changes changes its own layer (or one overflow layer) and the top layer,
 * never the others: each layer holds its files and the directories above them, written
 * the same way in every layer that needs them (mode, owner and time from the tree and
 * SOURCE_DATE_EPOCH), and nothing in it depends on the order things were built in.
 *
 * A layer whose entries are those of the previous build is not written again: its blob is
 * linked from the previous output (no file of it is read).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CrecipeError } from "../engine/errors.ts";
import { sha256Hex } from "../engine/hash.ts";
import { linkBlob } from "../engine/io.ts";
import { type Node, target } from "../engine/node.ts";
import type { Entry } from "../formats/entry.ts";
import { formatLine } from "../formats/filelist.ts";
import { sourceDateEpoch } from "../targets/layer.ts";
import { asFs } from "../targets/fs.ts";
import { type TarItem, writeTarFile } from "../targets/tarball.ts";
import { type TreeEntry, TreeView } from "../tree/view.ts";

/** An installed package, as dpkg's status file says. */
export interface InstalledPackage {
  /** The binary package's name. */
  name: string;
  /** Its version. */
  version: string;
  /** Its architecture ("amd64", "all"). */
  architecture: string;
  /** Its source package (the binary's own name when the status has no Source field). */
  source: string;
  /** The source package's version. */
  sourceVersion: string;
}

/** One layer of the split: its name, what it holds, its blob. */
export interface PackageLayer {
  /** The source package it holds, "overflow-N" or "top". */
  name: string;
  /** The binary packages whose files it holds. */
  packages: string[];
  /** sha256 hex of the tar (its blob name and diff_id). */
  digest: string;
  /** Its length in bytes. */
  size: number;
  /** Entries in it. */
  entries: number;
  /** Hash of its entries (what decides whether it is written again). */
  key: string;
}

/** The value of packageLayers(): the layers base first (what image() takes), and what each holds. */
export interface PackageLayersValue {
  /** Layer digests, base first. */
  layers: string[];
  /** What each layer holds, base first. */
  groups: PackageLayer[];
  /** The installed packages, by name. */
  packages: InstalledPackage[];
}

/** Parse dpkg's status file: the installed packages (Status: install ok installed). */
export function parseStatus(text: string): InstalledPackage[] {
  const found: InstalledPackage[] = [];
  for (const paragraph of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = "";
    for (const line of paragraph.split("\n")) {
      if (/^\s/.test(line)) continue; // a continuation line
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      last = line.slice(0, colon).toLowerCase();
      fields.set(last, line.slice(colon + 1).trim());
    }
    const name = fields.get("package");
    if (!name || !/\binstalled$/.test(fields.get("status") ?? "")) continue;
    const version = fields.get("version") ?? "";
    const sourceField = fields.get("source") ?? name;
    const m = /^(\S+)(?:\s+\(([^)]+)\))?/.exec(sourceField);
    found.push({ name, version, architecture: fields.get("architecture") ?? "all", source: m?.[1] ?? name, sourceVersion: m?.[2] ?? version });
  }
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const DPKG = "var/lib/dpkg";
/** Overflow layers, when the budget allows (6 layers or more). */
const OVERFLOW = 3;

/**
 * Layers of `tree` split by package: at most `budget` layers (default 10, at least 3:
 * groups of their own, then up to three overflow layers, then the top).
 *
 * ```ts
 * export const debianImage = image("debian", [packageLayers(debian, { budget: 10 })]);
 * ```
 */
export function packageLayers(tree: Node | string, options: { budget?: number } = {}): Node<PackageLayersValue> {
  const fsNode = asFs(tree);
  const budget = options.budget ?? 10;
  if (!Number.isInteger(budget) || budget < 3 || budget > 125) {
    throw new CrecipeError(`packageLayers(${fsNode.name}): a budget of ${budget} layers; want 3 to 125`, { fix: "packageLayers(fs, { budget: 10 })" });
  }
  const mtime = sourceDateEpoch();
  return target(`${fsNode.name}.pkglayers`, async (ctx) => {
    const view = await TreeView.open(ctx, fsNode);
    const all: TreeEntry[] = [...view.entries()];
    const rels = all.map((e) => e.path.toString("latin1")); // each entry's path, as the maps below key it
    const byPath = new Map(all.map((e, i) => [rels[i], e]));
    const read = (rel: string): string | undefined => {
      const e = byPath.get(rel);
      return e && e.type === "file" ? fs.readFileSync(e.host, "utf8") : undefined;
    };
    const status = read(`${DPKG}/status`);
    if (status === undefined) {
      throw new CrecipeError(`${fsNode.name} has no ${DPKG}/status: it is not a Debian tree`, { target: ctx.name, fix: "split a tree made by bootstrap() (or from one)" });
    }
    const packages = parseStatus(status);
    // dpkg names paths as packages ship them (/lib/x86_64-linux-gnu/libc.so.6); on a
    // merged-/usr tree /lib is a symlink to usr/lib: directories are resolved through the
    // tree's symlinks to where the entries are.
    const resolvedDirs = new Map<string, string>();
    const resolveDir = (dir: string, depth = 0): string => {
      if (!dir || depth > 16) return dir;
      const known = resolvedDirs.get(dir);
      if (known !== undefined) return known;
      const slash = dir.lastIndexOf("/");
      const parent = slash < 0 ? "" : resolveDir(dir.slice(0, slash), depth);
      const here = parent ? `${parent}/${dir.slice(slash + 1)}` : dir.slice(slash + 1);
      const e = byPath.get(here);
      let result = here;
      if (e?.type === "symlink") {
        const link = e.linkTarget!.toString("latin1");
        const joined = path.posix.normalize(link.startsWith("/") ? link.slice(1) : parent ? `${parent}/${link}` : link);
        result = joined.startsWith("..") ? here : resolveDir(joined === "." ? "" : joined, depth + 1);
      }
      resolvedDirs.set(dir, result);
      return result;
    };
    const canonical = (line: string): string => {
      const rel = Buffer.from(line.replace(/^\/+/, ""), "utf8").toString("latin1");
      const slash = rel.lastIndexOf("/");
      if (slash < 0) return rel;
      const dir = resolveDir(rel.slice(0, slash));
      return dir ? `${dir}/${rel.slice(slash + 1)}` : rel.slice(slash + 1);
    };
    const groupOf = new Map<string, string>(); // path (latin1, no leading /) → source package
    for (const pkg of packages) {
      const list = read(`${DPKG}/info/${pkg.name}:${pkg.architecture}.list`) ?? read(`${DPKG}/info/${pkg.name}.list`) ?? "";
      for (const line of list.split("\n")) {
        if (!line || line === "/.") continue;
        const rel = canonical(line);
        if (rel && !groupOf.has(rel)) groupOf.set(rel, pkg.source);
      }
    }
    // Diversions (three lines each: from, to, the diverting package or ":"): the file at
    // "from" is the diverter's; the diverted package's own file now sits at "to".
    const diversions = (read(`${DPKG}/diversions`) ?? "").split("\n");
    const sourceOf = new Map(packages.map((p) => [p.name, p.source]));
    for (let i = 0; i + 2 < diversions.length; i += 3) {
      const [from, to] = diversions.slice(i, i + 2).map(canonical);
      const by = diversions[i + 2];
      const diverted = groupOf.get(from);
      const diverter = sourceOf.get(by.split(":")[0]);
      if (diverter) groupOf.set(from, diverter);
      if (diverted && diverted !== diverter) groupOf.set(to, diverted);
    }

    // Each entry's group: its package's source, or "top" (unowned, or dpkg's database).
    const owner = (rel: string): string => {
      if (rel === DPKG || rel.startsWith(`${DPKG}/`)) return "top";
      return groupOf.get(rel) ?? "top";
    };
    const sizes = new Map<string, number>();
    for (const [i, e] of all.entries()) {
      if (e.type === "dir") continue;
      const g = owner(rels[i]);
      if (g !== "top") sizes.set(g, (sizes.get(g) ?? 0) + e.size + 512);
    }
    const ranked = [...sizes.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([g]) => g);
    // The groups that do not get a layer of their own share OVERFLOW layers, each group in
    // the one its name hashes to: a new or changed small package changes one of them.
    const buckets = budget >= 6 ? OVERFLOW : 1;
    const own = new Set(ranked.slice(0, budget - 1 - buckets));
    const bucketOf = (group: string) => `overflow-${(parseInt(sha256Hex(group).slice(0, 8), 16) % buckets) + 1}`;
    const layerOf = (group: string) => (group === "top" ? "top" : own.has(group) ? group : bucketOf(group));
    const overflow = [...new Set(ranked.filter((g) => !own.has(g)).map(bucketOf))].sort();
    const order = [...[...own].sort(), ...overflow, "top"];

    // What each layer holds: its entries, and the directories above them (dirs owned by
    // none go to the top). A hard link whose first name is in another layer becomes a file.
    const members = new Map<string, Set<string>>(order.map((l) => [l, new Set<string>()]));
    for (const rel of rels) {
      const layer = layerOf(owner(rel));
      const set = members.get(layer)!;
      set.add(rel);
      for (let slash = rel.lastIndexOf("/"); slash > 0; slash = rel.lastIndexOf("/", slash - 1)) set.add(rel.slice(0, slash));
    }
    const previous = readPrevious(ctx.finalPath);
    const blobs = path.join(ctx.out, "blobs", "sha256");
    fs.mkdirSync(blobs, { recursive: true });
    const packagesOf = new Map<string, string[]>();
    for (const p of packages) {
      const layer = layerOf(p.source);
      if (!packagesOf.has(layer)) packagesOf.set(layer, []);
      packagesOf.get(layer)!.push(p.name);
    }
    const groups: PackageLayer[] = [];
    for (const name of order) {
      const set = members.get(name)!;
      const items: TarItem[] = [];
      for (const [i, e] of all.entries()) {
        if (!set.has(rels[i])) continue;
        let entry: Entry & { host?: Buffer; sig?: string } = e;
        const linked = e.type === "hardlink" ? e.linkTarget!.toString("latin1") : undefined;
        if (linked !== undefined && !set.has(linked)) {
          const first = byPath.get(linked)!;
          entry = { ...first, path: e.path, uid: e.uid, gid: e.gid };
        }
        items.push({ entry, host: entry.host, sig: entry.sig });
      }
      const key = sha256Hex(`${mtime}\n${items.map((i) => formatLine(i.entry)).join("")}`);
      const before = previous.find((g) => g.key === key);
      const old = before && path.join(ctx.finalPath, "blobs", "sha256", before.digest);
      let digest: string;
      let size: number;
      if (before && fs.existsSync(old!)) {
        digest = before.digest;
        size = before.size;
        linkBlob(old!, path.join(blobs, digest));
      } else {
        const temp = path.join(ctx.tmp, `${groups.length}.tar`);
        ({ digest, size } = await writeTarFile(temp, items, items.reduce((n, i) => n + i.entry.size + 1024, 0), mtime, ctx.name, { tree: fsNode.name }));
        if (fs.existsSync(path.join(blobs, digest))) fs.rmSync(temp);
        else fs.renameSync(temp, path.join(blobs, digest));
      }
      groups.push({ name, packages: (packagesOf.get(name) ?? []).sort(), digest, size, entries: items.length, key });
    }
    const value: PackageLayersValue = { layers: groups.map((g) => g.digest), groups, packages };
    fs.writeFileSync(path.join(ctx.out, "layers.json"), JSON.stringify(groups, null, 1) + "\n");
    ctx.trustOutputHash(`pkglayers:${sha256Hex(groups.map((g) => g.digest).join(","))}`);
    return value;
  }, { kind: "pkglayers", shared: true, signsFiles: true, options: { fs: fsNode, budget, mtime }, derived: true });
}

/** The groups the previous output recorded (none when there is none). */
function readPrevious(dir: string): PackageLayer[] {
  try {
    const groups = JSON.parse(fs.readFileSync(path.join(dir, "layers.json"), "utf8"));
    return Array.isArray(groups) ? groups.filter((g) => typeof g?.key === "string" && /^[0-9a-f]{64}$/.test(g?.digest)) : [];
  } catch {
    return [];
  }
}
