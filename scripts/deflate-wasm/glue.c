/*
 * crecipe's gzip compressor in WebAssembly: libdeflate's, one buffer in, one gzip member
 * out (lib/formats/deflate.ts drives it; build.sh builds it). No libc: memory comes from
 * bump.h, never freed.
 */
#include "libdeflate.h"

#include "../bump.h"

static void keep(void *p) { (void)p; }

static struct libdeflate_compressor *compressor;
static unsigned char *in, *out;
static size_t out_cap;

/* One compressor at `level` for inputs of up to `capacity` bytes; 0 if memory ran out. */
__attribute__((export_name("setup"))) int setup(int level, unsigned long capacity) {
  struct libdeflate_options options = { sizeof(options), bump, keep };
  compressor = libdeflate_alloc_compressor_ex(level, &options);
  if (!compressor) return 0;
  out_cap = libdeflate_gzip_compress_bound(compressor, capacity);
  in = bump(capacity);
  out = bump(out_cap);
  return in && out;
}

/* Where the input goes, and where its gzip member comes out. */
__attribute__((export_name("input"))) unsigned char *input(void) { return in; }
__attribute__((export_name("output"))) unsigned char *output(void) { return out; }

/* gzip the input's first n bytes into the output: the member's size (0: it did not fit). */
__attribute__((export_name("gzip"))) unsigned long gzip(unsigned long n) {
  return libdeflate_gzip_compress(compressor, in, n, out, out_cap);
}
