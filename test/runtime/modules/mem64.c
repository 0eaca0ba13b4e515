/* mem64.c — a memory64 (wasm64) test module: its accesses are explicitly bounds-checked by
 * the generated code (no guard pages), and its memory may move when it grows. */
#include <stdint.h>
#define EXPORT(name) __attribute__((export_name(name), visibility("default")))
EXPORT("load_u8") uint32_t load_u8(uint64_t addr) { return *(volatile uint8_t *)(uintptr_t)addr; }
EXPORT("store_u8") void store_u8(uint64_t addr, uint32_t v) { *(volatile uint8_t *)(uintptr_t)addr = (uint8_t)v; }
EXPORT("mem_grow") uint64_t mem_grow(uint64_t d) { return (uint64_t)__builtin_wasm_memory_grow(0, d); }
EXPORT("mem_pages") uint64_t mem_pages(void) { return (uint64_t)__builtin_wasm_memory_size(0); }
