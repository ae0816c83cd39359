/**
 * A deterministic cpio "newc" (070701) writer, the format the Linux kernel unpacks as an
 * initramfs. Inode numbers, device numbers and times come from the caller, never from
 * the disk, so the same entries always give the same bytes. The layout matches GNU cpio
 * `-o -H newc --reproducible` except that inodes count from 1, as the kernel and
 * GNU cpio only compare them for equality.
 */
import { type Entry, FormatError, checkPath, comparePaths, escapePath, parentPath } from "./entry.ts";

const MAX = 0xffffffff; // every header field is 8 hex digits

const S_IFMT: Partial<Record<Entry["type"], number>> = {
  file: 0o100000,
  hardlink: 0o100000, // newc has no link type: a hard link is a regular file sharing an inode
  dir: 0o040000,
  symlink: 0o120000,
  fifo: 0o010000,
  char: 0o020000,
  block: 0o060000,
};

function header(fields: number[], name: Buffer, what: string): Buffer {
  const hex = fields.map((value) => {
    if (!Number.isSafeInteger(value) || value < 0 || value > MAX) {
      throw new FormatError(`${what}: value ${value} does not fit in a cpio newc header`);
    }
    return value.toString(16).toUpperCase().padStart(8, "0");
  });
  // namesize counts the terminating NUL; header plus name is padded to 4 bytes.
  const head = Buffer.from("070701" + hex.join("") + (name.length + 1).toString(16).toUpperCase().padStart(8, "0") + "00000000", "latin1");
  return Buffer.concat([head, name, Buffer.alloc(1), cpioPadding(head.length + name.length + 1)]);
}

/** Zero bytes that bring `size` bytes up to the next 4-byte boundary, as newc requires. */
export function cpioPadding(size: number): Buffer {
  return Buffer.alloc((4 - (size % 4)) % 4);
}

/**
 * One archive member: header, name and padding, then the data and its padding.
 * Symlinks store their target as data. A "hardlink" entry becomes a regular file with
 * the given `ino`/`nlink`; newc keeps one copy of the data, on the group's last member
 * (see cpioArchive). For a file without `content` only the header is returned, declaring
 * entry.size: the caller streams that many bytes, then cpioPadding(entry.size).
 * Extended attributes are dropped: newc cannot store them.
 */
export function cpioEntry(entry: Entry, ino: number, nlink: number, mtime: number, content?: Buffer): Buffer {
  const { path, type } = entry;
  const what = `"${escapePath(path)}"`;
  checkPath(path);
  const ifmt = S_IFMT[type];
  if (ifmt === undefined) throw new FormatError(`${what}: a ${type} cannot be stored in cpio`);
  if (!Number.isInteger(entry.mode) || entry.mode < 0 || entry.mode > 0o7777) {
    throw new FormatError(`${what}: mode ${entry.mode} is not within 0..0o7777`);
  }
  let data = content ?? Buffer.alloc(0);
  let size = content ? content.length : entry.size;
  if (type === "symlink") {
    if (!entry.linkTarget?.length || entry.linkTarget.includes(0)) throw new FormatError(`${what}: symlink target is empty or contains NUL`);
    data = entry.linkTarget;
    size = data.length;
  } else if (type === "file") {
    if (content && content.length !== entry.size) {
      throw new FormatError(`${what}: content is ${content.length} bytes but the entry says ${entry.size}`);
    }
  } else if (type !== "hardlink") {
    if (data.length) throw new FormatError(`${what}: a ${type} has no content`);
    size = 0;
  }
  const isDevice = type === "char" || type === "block";
  const fields = [
    ino, ifmt | entry.mode, entry.uid, entry.gid, nlink, mtime, size,
    0, 0, // the device holding the file: meaningless in an archive, and machine-specific
    isDevice ? entry.devMajor ?? 0 : 0, isDevice ? entry.devMinor ?? 0 : 0,
  ];
  const head = header(fields, path, what);
  if (type !== "symlink" && !content) return head;
  return Buffer.concat([head, data, cpioPadding(data.length)]);
}

/** The end-of-archive member, "TRAILER!!!", with nlink 1 as GNU cpio writes it. */
export function cpioTrailer(): Buffer {
  return header([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0], Buffer.from("TRAILER!!!"), "trailer");
}

/**
 * A whole newc archive of `items` in the given order, ending with the trailer. Inodes
 * are numbered from 1 in order of appearance; a "hardlink" shares the inode of its
 * target (anywhere in `items`: sorting by path may put a link before its target) and
 * every member of the group gets the group's nlink and the target's metadata. As in
 * GNU cpio, a file's data is stored once, with the group's last member, and the earlier
 * members have size 0: GNU cpio defers those until the data arrives, and the kernel links
 * them to the first name it saw. Directories get nlink 2 + subdirectories, like a real
 * file system.
 */
export function cpioArchive(items: { entry: Entry; content?: Buffer }[], mtime: number): Buffer {
  // latin1 maps each byte to one character, so it is a lossless key for raw paths.
  const key = (p: Buffer) => p.toString("latin1");
  const byPath = new Map(items.map(({ entry }, i) => [key(entry.path), i]));
  if (byPath.size !== items.length) throw new FormatError("the same path appears twice in the cpio items");
  const subdirs = new Map<string, number>();
  for (const { entry } of items) {
    if (entry.type === "dir") subdirs.set(key(parentPath(entry.path)), (subdirs.get(key(parentPath(entry.path))) ?? 0) + 1);
  }
  // The item owning each inode: a hard link's target, followed through links to links.
  const owner = items.map(({ entry }) => {
    let own = byPath.get(key(entry.path))!;
    for (const seen = new Set<number>(); items[own].entry.type === "hardlink"; seen.add(own)) {
      const link = items[own].entry;
      const next = link.linkTarget && byPath.get(key(link.linkTarget));
      if (next === undefined || seen.has(next)) {
        throw new FormatError(`hard link "${escapePath(link.path)}" points to "${escapePath(link.linkTarget ?? Buffer.alloc(0))}", which is not a file in the archive`);
      }
      own = next;
    }
    if (entry.type === "hardlink" && items[own].entry.type === "dir") {
      throw new FormatError(`hard link "${escapePath(entry.path)}" points to a directory`);
    }
    return own;
  });
  const members = new Map<number, number[]>(); // owner index -> items sharing its inode, in order
  owner.forEach((own, i) => members.set(own, [...(members.get(own) ?? []), i]));

  const inodes = new Map<number, number>();
  const parts = items.map(({ entry }, i) => {
    const own = owner[i];
    if (!inodes.has(own)) inodes.set(own, inodes.size + 1);
    const target = items[own];
    const group = members.get(own)!;
    // Members are copies of the inode's owner under their own name: one inode, one mode.
    const member: Entry = { ...target.entry, path: entry.path };
    const nlink = member.type === "dir" ? 2 + (subdirs.get(key(entry.path)) ?? 0) : group.length;
    if (member.type !== "file") return cpioEntry(member, inodes.get(own)!, nlink, mtime, target.content);
    if ((target.content?.length ?? 0) !== member.size) {
      throw new FormatError(`"${escapePath(target.entry.path)}": content is ${target.content?.length ?? 0} bytes but the entry says ${member.size}`);
    }
    const last = group[group.length - 1] === i;
    return cpioEntry(last ? member : { ...member, size: 0 }, inodes.get(own)!, nlink, mtime, last ? target.content ?? Buffer.alloc(0) : Buffer.alloc(0));
  });
  return Buffer.concat([...parts, cpioTrailer()]);
}

/** Items in comparePaths order, which puts every directory before its contents. */
export function sortItems<T extends { entry: Entry }>(items: T[]): T[] {
  return [...items].sort((a, b) => comparePaths(a.entry.path, b.entry.path));
}
