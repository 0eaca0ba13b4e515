/* native_seed.c — a small shared object for the fuzz seeds' NATIVE sections (make_seeds.c):
 * built with -nostdlib, it still has what the loader walks in a real module's object: an
 * init array, relative and symbol relocations, an exported table of function pointers
 * (like M64_NATIVE_ABI), a symbol version definition, GNU and SysV hash tables. */
extern void m64_seed_host(const char *);
static int ready;
/* calls out, so that the compiler cannot fold it into ready's initial value and drop it */
__attribute__((constructor)) static void init(void) {
  m64_seed_host("init");
  ready = 1;
}
static unsigned f0(unsigned x) { return x + (unsigned)ready; }
static unsigned f1(unsigned x) {
  m64_seed_host("x");
  return x * 3;
}
__attribute__((visibility("default"))) const struct {
  unsigned version;
  unsigned (*fn[2])(unsigned);
} M64_NATIVE_ABI = {3, {f0, f1}};
