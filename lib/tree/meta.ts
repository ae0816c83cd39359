/**
 * What an fs target's value records besides its files: owners and device nodes (kept as
 * metadata so no root is needed), and, for a snapshot, the fs it stands on.
 */

/** A device node a tree holds (recorded by root.mknod or a tarball; no root needed). */
export interface Device {
  /** Character or block device. */
  type: "char" | "block";
  /** Its major number. */
  major: number;
  /** Its minor number. */
  minor: number;
  /** Its permission bits. */
  mode: number;
}

/** What an fs target's value records besides its files. */
export interface TreeMeta {
  /** uid, gid by escaped path (formats/entry's escapePath); absent means 0:0. */
  owners: Record<string, [number, number]>;
  /** Device nodes by escaped path; on disk an empty file stands for each. */
  devices: Record<string, Device>;
  /**
   * Extended attributes by escaped path, name → value in hex (file capabilities such as
   * security.capability, ACLs as system.posix_acl_*): recorded, not applied, so they need
   * no privilege and reach layers the same whoever builds.
   */
  xattrs?: Record<string, Record<string, string>>;
  /**
   * The fs this one is a snapshot of (`root.from(base)`): its directory then holds only
   * what changed, as an overlayfs upper directory does (deletions are whiteouts: char
   * devices 0:0), and readers see the layers merged.
   */
  base?: { name: string; stamp: string };
}

/** @deprecated the old name: an fs value is a TreeMeta. */
export type Ownership = TreeMeta;

export const emptyMeta = (): TreeMeta => ({ owners: {}, devices: {} });

/** A target's value as tree metadata (a dir target that is not an fs has none). */
export function asMeta(value: unknown): TreeMeta {
  const v = value as Partial<TreeMeta> | null;
  return {
    owners: v && typeof v.owners === "object" ? v.owners as TreeMeta["owners"] : {},
    devices: v && typeof v.devices === "object" ? v.devices as TreeMeta["devices"] : {},
    ...(v?.xattrs && typeof v.xattrs === "object" ? { xattrs: v.xattrs } : {}),
    ...(v?.base ? { base: v.base } : {}),
  };
}
