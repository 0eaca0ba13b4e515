/* test_glue.c — linked into test modules that do not use native_glue.c: exports the size of
 * the wasm2c instance struct so the test can calloc it without the generated header. */
#include <stdint.h>
#include M64_MODULE_HEADER
__attribute__((visibility("default"))) const uint64_t M64_TEST_INSTANCE_SIZE = sizeof(w2c_m64mod);
