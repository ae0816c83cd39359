/*
 * crecipe's streaming gzip in WebAssembly: zlib's deflate, one gzip stream fed a buffer at
 * a time (lib/formats/zlib-stream.ts drives it; build.sh builds it). For what must be one
 * stream, such as an initramfs, whose kernel unpacker wants each gzip member to hold whole
 * cpio archives. No libc: memory comes from bump.h, never freed (one stream per instance).
 */
#include "zlib.h"

#include "../bump.h"

static voidpf zalloc(voidpf opaque, uInt items, uInt size) { (void)opaque; return bump((unsigned long)items * size); }
static void zfree(voidpf opaque, voidpf p) { (void)opaque; (void)p; }

/* Input is taken 64 KiB at a time; output comes out 32 KiB at a time, so incompressible
 * input drains more than once (the loop the tests run through). */
#define IN (64 * 1024)
#define OUT (32 * 1024)
static z_stream strm;
static unsigned char *in, *out;
static int flush, last;

/* A gzip stream at `level` (0-9), no name, no time: 1 when it is ready. */
__attribute__((export_name("setup"))) int setup(int level) {
  in = bump(IN);
  out = bump(OUT);
  if (!in || !out) return 0;
  strm.zalloc = zalloc;
  strm.zfree = zfree;
  return deflateInit2(&strm, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
}

/* Where input goes (up to inputSize() bytes at a time), and where output comes out. */
__attribute__((export_name("input"))) unsigned char *input(void) { return in; }
__attribute__((export_name("inputSize"))) int inputSize(void) { return IN; }
__attribute__((export_name("output"))) unsigned char *output(void) { return out; }

/* Compress until the output is full or nothing is left to do: the bytes in the output, or -1. */
__attribute__((export_name("drain"))) int drain(void) {
  strm.next_out = out;
  strm.avail_out = OUT;
  last = deflate(&strm, flush);
  if (last != Z_OK && last != Z_STREAM_END && last != Z_BUF_ERROR) return -1;
  return OUT - strm.avail_out;
}

/* Take the input's first n bytes (finish: they are the last) and drain once. */
__attribute__((export_name("feed"))) int feed(int n, int finish) {
  strm.next_in = in;
  strm.avail_in = n;
  flush = finish ? Z_FINISH : Z_NO_FLUSH;
  return drain();
}

/* Whether drain() has more to give before the next feed(). */
__attribute__((export_name("more"))) int more(void) {
  if (last == Z_STREAM_END || last == Z_BUF_ERROR) return 0; /* done, or no progress possible */
  return strm.avail_in > 0 || strm.avail_out == 0 || flush == Z_FINISH;
}
