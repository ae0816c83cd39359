/** crecipe serve as a child process, asked what a static server must answer: ranges, validators, escapes. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { multipartBoundary, MultipartReader } from "../../lib/formats/byteranges.ts";
import { crecipe, tempDir } from "../helpers.ts";
import { pseudoRandom, startServe } from "./helpers.ts";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(port: number, urlPath: string, headers: Record<string, string> = {}, method = "GET"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path: urlPath, method, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (d) => parts.push(d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("crecipe serve", () => {
  const root = tempDir("crecipe-serve-");
  const dir = path.join(root, "out");
  const data = pseudoRandom(300_000, "served");
  let server: Awaited<ReturnType<typeof startServe>>;
  before(async () => {
    fs.mkdirSync(path.join(dir, "sub"), { recursive: true });
    fs.writeFileSync(path.join(dir, "app.layer"), data);
    fs.writeFileSync(path.join(dir, "sub", "a b.txt"), "spaces\n");
    fs.writeFileSync(path.join(root, "secret.txt"), "outside\n");
    fs.symlinkSync("../secret.txt", path.join(dir, "escape.txt"));
    fs.symlinkSync(root, path.join(dir, "up"));
    fs.symlinkSync("app.layer", path.join(dir, "inside.layer"));
    server = await startServe(dir);
  });
  after(() => server?.stop());

  it("listens on 127.0.0.1 and says where", () => {
    assert.match(server.log(), /^crecipe: serving .*\/out at http:\/\/127\.0\.0\.1:\d+\/ \(Ctrl-C stops\)$/m);
  });

  it("GET and HEAD: the whole file with its length, type, ETag and Last-Modified", async () => {
    const whole = await get(server.port, "/app.layer");
    assert.equal(whole.status, 200);
    assert.ok(whole.body.equals(data));
    assert.equal(whole.headers["content-length"], String(data.length));
    assert.equal(whole.headers["accept-ranges"], "bytes");
    assert.match(whole.headers.etag!, /^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$/);
    assert.ok(whole.headers["last-modified"]);
    const head = await get(server.port, "/app.layer", {}, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers["content-length"], String(data.length));
    assert.equal(head.headers.etag, whole.headers.etag);
    const range = await get(server.port, "/app.layer", { Range: "bytes=0-9" }, "HEAD");
    assert.equal(range.status, 200, "Range is for GET only");
    assert.equal((await get(server.port, "/sub/a%20b.txt")).body.toString(), "spaces\n");
    assert.equal((await get(server.port, "/app.layer", {}, "POST")).status, 405);
  });

  it("one range → 206 with Content-Range; suffix and open ranges; clipped at the end", async () => {
    const one = await get(server.port, "/app.layer", { Range: "bytes=100-199" });
    assert.equal(one.status, 206);
    assert.equal(one.headers["content-range"], `bytes 100-199/${data.length}`);
    assert.equal(one.headers["content-length"], "100");
    assert.ok(one.body.equals(data.subarray(100, 200)));
    const suffix = await get(server.port, "/app.layer", { Range: "bytes=-10" });
    assert.ok(suffix.body.equals(data.subarray(data.length - 10)));
    const open = await get(server.port, "/app.layer", { Range: `bytes=${data.length - 5}-` });
    assert.ok(open.body.equals(data.subarray(data.length - 5)));
    const clipped = await get(server.port, "/app.layer", { Range: `bytes=${data.length - 3}-${data.length + 100}` });
    assert.equal(clipped.headers["content-range"], `bytes ${data.length - 3}-${data.length - 1}/${data.length}`);
  });

  it("several ranges → 206 multipart/byteranges, each part with its Content-Range, the length exact", async () => {
    const asked = [[0, 0], [1000, 1999], [299_990, 299_999], [50, 59]];
    const answer = await get(server.port, "/app.layer", { Range: `bytes=${asked.map(([a, b]) => `${a}-${b}`).join(",")}` });
    assert.equal(answer.status, 206);
    const boundary = multipartBoundary(answer.headers["content-type"]);
    assert.ok(boundary, answer.headers["content-type"]);
    assert.equal(Number(answer.headers["content-length"]), answer.body.length);
    const parts: { start: number; end: number; bytes: Buffer[] }[] = [];
    const reader = new MultipartReader(boundary!, { part: (r) => parts.push({ ...r, bytes: [] }), data: (b) => parts.at(-1)!.bytes.push(Buffer.from(b)) });
    reader.push(answer.body);
    reader.end();
    assert.deepEqual(parts.map((p) => [p.start, p.end]), asked);
    for (const p of parts) assert.ok(Buffer.concat(p.bytes).equals(data.subarray(p.start, p.end + 1)));
    assert.match(answer.body.toString("latin1", 0, 200), new RegExp(`^\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-0/300000\r\n\r\n`));
  });

  it("416 for a range past the end; an invalid Range header is ignored (200)", async () => {
    const past = await get(server.port, "/app.layer", { Range: `bytes=${data.length}-` });
    assert.equal(past.status, 416);
    assert.equal(past.headers["content-range"], `bytes */${data.length}`);
    assert.equal((await get(server.port, "/app.layer", { Range: "bytes=-0" })).status, 416);
    for (const bad of ["bytes=5-1", "items=0-1", "bytes=x-y", "bytes="]) {
      const answer = await get(server.port, "/app.layer", { Range: bad });
      assert.equal(answer.status, 200, bad);
      assert.equal(answer.body.length, data.length);
    }
  });

  it("validators: If-None-Match → 304, If-Range with an old ETag → the whole file, If-Match that fails → 412", async () => {
    const { headers } = await get(server.port, "/app.layer", {}, "HEAD");
    const etag = headers.etag!;
    assert.equal((await get(server.port, "/app.layer", { "If-None-Match": etag })).status, 304);
    assert.equal((await get(server.port, "/app.layer", { "If-None-Match": `"other", W/${etag}` })).status, 304);
    assert.equal((await get(server.port, "/app.layer", { "If-None-Match": '"other"' })).status, 200);
    assert.equal((await get(server.port, "/app.layer", { "If-Modified-Since": headers["last-modified"]! })).status, 304);
    const current = await get(server.port, "/app.layer", { Range: "bytes=0-9", "If-Range": etag });
    assert.equal(current.status, 206);
    const stale = await get(server.port, "/app.layer", { Range: "bytes=0-9", "If-Range": '"old"' });
    assert.equal(stale.status, 200);
    assert.equal(stale.body.length, data.length);
    assert.equal((await get(server.port, "/app.layer", { "If-Match": '"old"' })).status, 412);
    assert.equal((await get(server.port, "/app.layer", { "If-Match": etag, Range: "bytes=0-0" })).status, 206);
  });

  it("nothing outside the directory: .., encoded .., symlinks out are refused; a symlink inside is served", async () => {
    for (const p of ["/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/sub/%2E%2E/%2e%2e/secret.txt", "/escape.txt", "/up/secret.txt", "/up/"]) {
      const answer = await get(server.port, p);
      assert.ok(answer.status === 403 || answer.status === 404, `${p}: ${answer.status}`);
      assert.ok(!answer.body.toString().includes("outside"), p);
    }
    assert.equal((await get(server.port, "/%zz")).status, 400);
    assert.equal((await get(server.port, "/nothing")).status, 404);
    assert.ok((await get(server.port, "/inside.layer")).body.equals(data));
    const listing = await get(server.port, "/sub");
    assert.equal(listing.status, 301);
    assert.match((await get(server.port, "/")).body.toString(), /href="app\.layer"/);
  });

  it("one log line per request; --port in use and a missing directory are errors with a fix (exit 2)", () => {
    assert.match(server.log(), /^GET \/app\.layer 206 100$/m);
    const missing = crecipe(root, ["serve", path.join(root, "nope"), "--port", "0"]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^crecipe: error: cannot serve .*nope: ENOENT\n  fix: give an existing directory/m);
    const busy = crecipe(root, ["serve", dir, "--port", String(server.port)]);
    assert.equal(busy.status, 2);
    assert.match(busy.stderr, /^crecipe: error: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE\n  fix: choose another --port/m);
    assert.equal(crecipe(root, ["serve", dir, "--port", "x"]).status, 2);
  });
});
