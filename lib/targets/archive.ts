/**
 * Writing a large archive in one pass: buffered writes (a tar is many small headers),
 * the sha256 computed on the way, so neither the engine nor an image has to read the
 * file again to learn its digest.
 */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";

export class ArchiveFile {
  private readonly fd: number;
  private readonly hash: Hash = createHash("sha256");
  private readonly buffer = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  size = 0;

  constructor(path: string) {
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

  /** Append a file's bytes; returns how many there were. */
  copyFrom(path: string | Buffer): number {
    const input = fs.openSync(path, "r");
    let total = 0;
    try {
      for (;;) {
        if (this.used === this.buffer.length) this.flush();
        const n = fs.readSync(input, this.buffer, this.used, this.buffer.length - this.used, null);
        if (n === 0) break;
        this.hash.update(this.buffer.subarray(this.used, this.used + n));
        this.used += n;
        this.size += n;
        total += n;
      }
    } finally {
      fs.closeSync(input);
    }
    return total;
  }

  private flush(): void {
    if (this.used) fs.writeSync(this.fd, this.buffer, 0, this.used);
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
