/**
 * HTTP byte ranges, pure (RFC 9110 §14): the `Range` header a server reads, the
 * `multipart/byteranges` body it writes for several ranges, and the streaming reader a
 * client uses on that body. No sockets here: strings and bytes in, ranges and parts out.
 */
import { FormatError } from "./entry.ts";

/** An inclusive byte range, as HTTP spells them (`bytes=0-99` is the first 100 bytes). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The ranges a `Range` header asks of a `size`-byte representation: a list (clipped to the
 * size, in the order asked), "unsatisfiable" (416) when none overlaps the file, or
 * undefined when the header is not a valid bytes range set, which a server ignores (200).
 *
 * ```ts
 * parseRange("bytes=0-99,-10", 1000); // [{ start: 0, end: 99 }, { start: 990, end: 999 }]
 * ```
 */
export function parseRange(header: string, size: number): ByteRange[] | "unsatisfiable" | undefined {
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!match) return undefined;
  const ranges: ByteRange[] = [];
  let valid = 0;
  for (const raw of match[1].split(",")) {
    const spec = raw.trim();
    if (spec === "") continue; // "bytes=0-1, ,2-3": empty elements are allowed
    const m = /^(\d*)-(\d*)$/.exec(spec);
    if (!m || (m[1] === "" && m[2] === "")) return undefined;
    valid++;
    if (m[1] === "") {
      const suffix = Number(m[2]);
      if (suffix > 0 && size > 0) ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const start = Number(m[1]);
    if (m[2] !== "" && Number(m[2]) < start) return undefined;
    const end = m[2] === "" ? size - 1 : Number(m[2]);
    if (start < size) ranges.push({ start, end: Math.min(end, size - 1) });
  }
  if (valid === 0) return undefined;
  return ranges.length ? ranges : "unsatisfiable";
}

/** `bytes=0-99,200-299` for a request. */
export function formatRange(ranges: readonly ByteRange[]): string {
  return "bytes=" + ranges.map((r) => `${r.start}-${r.end}`).join(",");
}

/** `Content-Range: bytes 0-99/1000`, parsed; undefined when it is not one. */
export function parseContentRange(value: string | undefined): (ByteRange & { total: number | undefined }) | undefined {
  const m = value && /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return undefined;
  return { start, end, total: m[3] === "*" ? undefined : Number(m[3]) };
}

/**
 * The framing of a `multipart/byteranges` body: what goes before each part's bytes and
 * after the last, and the body's total length (for Content-Length).
 */
export function multipartFraming(ranges: readonly ByteRange[], size: number, contentType: string, boundary: string) {
  // Every delimiter is CRLF--boundary, the first too (an empty preamble), as nginx and
  // Apache write it: zsync reads nothing else.
  const heads = ranges.map((r) =>
    Buffer.from(`\r\n--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`, "latin1")
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, "latin1");
  const length = heads.reduce((n, h, i) => n + h.length + ranges[i].end - ranges[i].start + 1, 0) + tail.length;
  return { heads, tail, length };
}

/** The boundary of a `multipart/byteranges` Content-Type, or undefined. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  const m = contentType && /^\s*multipart\/byteranges\s*;(?:.*;)?\s*boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

export interface PartHandler {
  /** A part begins: the range it holds. */
  part(range: ByteRange): void;
  /** Bytes of the current part, in order. */
  data(bytes: Buffer): void;
}

const CRLF2 = Buffer.from("\r\n\r\n", "latin1");

/**
 * Reads a `multipart/byteranges` body as it arrives, in blocks of any size. A part's bytes
 * are counted by its Content-Range, not searched for the boundary, so they pass through
 * without a copy.
 *
 * ```ts
 * const reader = new MultipartReader(boundary, { part: (r) => …, data: (bytes) => … });
 * response.on("data", (b) => reader.push(b)); response.on("end", () => reader.end());
 * ```
 */
export class MultipartReader {
  private readonly delimiter: Buffer;
  private pending: Buffer = Buffer.alloc(0);
  private remaining = 0;
  private state: "delimiter" | "headers" | "body" | "done" = "delimiter";

  constructor(boundary: string, private readonly handler: PartHandler) {
    this.delimiter = Buffer.from(`--${boundary}`, "latin1");
  }

  push(block: Buffer): void {
    let data: Buffer = this.pending.length ? Buffer.concat([this.pending, block]) : block;
    this.pending = Buffer.alloc(0);
    while (data.length) {
      if (this.state === "body") {
        const n = Math.min(this.remaining, data.length);
        this.handler.data(data.subarray(0, n));
        this.remaining -= n;
        data = data.subarray(n);
        if (this.remaining === 0) this.state = "delimiter";
      } else if (this.state === "delimiter") {
        const at = data.indexOf(this.delimiter);
        const after = at + this.delimiter.length;
        if (at < 0 || data.length < after + 2) {
          if (data.length > 4096) throw new FormatError("multipart body: no boundary where one was expected");
          this.pending = data;
          return;
        }
        if (data[after] === 0x2d && data[after + 1] === 0x2d) { // "--": the closing delimiter
          this.state = "done";
          return;
        }
        this.state = "headers";
        data = data.subarray(after);
      } else if (this.state === "headers") {
        const end = data.indexOf(CRLF2);
        if (end < 0) {
          if (data.length > 16384) throw new FormatError("multipart body: a part's headers do not end");
          this.pending = data;
          return;
        }
        const headers = data.toString("latin1", 0, end);
        const range = parseContentRange(/^content-range:(.*)$/im.exec(headers)?.[1]);
        if (!range) throw new FormatError(`multipart body: a part without a Content-Range (${JSON.stringify(headers.trim())})`);
        this.handler.part({ start: range.start, end: range.end });
        this.remaining = range.end - range.start + 1;
        this.state = "body";
        data = data.subarray(end + 4);
      } else {
        return; // the epilogue, ignored
      }
    }
  }

  /** The body ended: was it complete? */
  end(): void {
    if (this.state !== "done") throw new FormatError(`multipart body ended early (${this.state === "body" ? `${this.remaining} bytes of a part missing` : "no closing boundary"})`);
  }
}
