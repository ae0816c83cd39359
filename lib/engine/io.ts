/**
 * Streaming file I/O for large outputs: a buffered writer that hashes what it writes (a
 * tar is many small headers; its digest comes for free on the way), and a line reader
 * that holds one chunk, never the whole file.
 */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";

export class OutputFile {
  private readonly fd: number;
  private readonly hash: Hash = createHash("sha256");
  private readonly buffer = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  size = 0;

  constructor(path: string | Buffer) {
    this.fd = fs.openSync(path, "w");
  }

  write(data: Uint8Array): void {
    this.hash.update(data);
    this.size += data.length;
    if (this.used + data.length > this.buffer.length) this.flush();
    if (data.length >= this.buffer.length) {
      fs.writeSync(this.fd, data);
      return;
    }
    this.buffer.set(data, this.used);
    this.used += data.length;
  }

  writeText(text: string): void {
    this.write(Buffer.from(text, "latin1"));
  }

  /**
   * Append `size` bytes of an open file; returns how many there were (fewer when the
   * file shrank meanwhile, which the caller must treat as an error).
   */
  copyFrom(fd: number, size: number): number {
    let total = 0;
    while (total < size) {
      if (this.used === this.buffer.length) this.flush();
      const want = Math.min(this.buffer.length - this.used, size - total);
      const n = fs.readSync(fd, this.buffer, this.used, want, null);
      if (n === 0) break;
      this.hash.update(this.buffer.subarray(this.used, this.used + n));
      this.used += n;
      this.size += n;
      total += n;
    }
    return total;
  }

  private flush(): void {
    let written = 0;
    while (written < this.used) written += fs.writeSync(this.fd, this.buffer, written, this.used - written);
    this.used = 0;
  }

  /** Flush and close; returns the sha256 hex of everything written. */
  close(): string {
    this.flush();
    fs.closeSync(this.fd);
    return this.hash.digest("hex");
  }

  /** Close without caring for the digest (on an error path). */
  abandon(): void {
    try {
      fs.closeSync(this.fd);
    } catch { /* closed */ }
  }
}

/** The lines of a text file, without their newlines, read a chunk at a time (latin1: bytes stay bytes). */
export function* readLines(path: string): Generator<string> {
  const fd = fs.openSync(path, "r");
  const buffer = Buffer.allocUnsafe(1 << 20);
  let rest = "";
  try {
    for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0;) {
      const text = rest + buffer.toString("latin1", 0, n);
      let start = 0;
      for (let end; (end = text.indexOf("\n", start)) >= 0; start = end + 1) yield text.slice(start, end);
      rest = text.slice(start);
    }
    if (rest) yield rest;
  } finally {
    fs.closeSync(fd);
  }
}

/** rm -rf that also copes with read-only directories inside (a built tree may have them). */
export function removeTree(dir: string | Buffer): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    const chmodAll = (p: Buffer) => {
      try {
        const st = fs.lstatSync(p);
        if (st.isDirectory()) {
          fs.chmodSync(p, 0o700);
          for (const name of fs.readdirSync(p, { encoding: "buffer" })) chmodAll(Buffer.concat([p, Buffer.from("/"), name]));
        }
      } catch { /* ignore */ }
    };
    chmodAll(Buffer.from(dir));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
