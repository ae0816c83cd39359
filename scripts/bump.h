/*
 * Memory for a module with no libc (each glue.c beside the build scripts): handed out once,
 * from the end of the module's data, growing it as needed, never freed; 0 when it cannot.
 */
extern unsigned char __heap_base;
static unsigned long top = (unsigned long)&__heap_base;

static void *bump(unsigned long n) {
  unsigned long start = (top + 15) & ~15UL;
  unsigned long end = start + n;
  unsigned long have = __builtin_wasm_memory_size(0) * 65536UL;
  if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) == (unsigned long)-1) return 0;
  top = end;
  return (void *)start;
}
