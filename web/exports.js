// exports.js — mirrors module/exports.h (the module's exports, in the table's order, with the ABI version that added each): a JS twin because the page is served from the source tree with no build step; test/web/exports_test.mjs checks that the two agree.
export const MODULE_EXPORTS = [
  ['m64_abi_version', 2], ['m64_alloc', 2], ['m64_state_bytes', 2], ['m64_init', 2], ['m64_n_vocab', 2],
  ['m64_n_layers', 2], ['m64_n_ctx_train', 2], ['m64_threads', 2], ['m64_worker', 2], ['m64_forward', 2],
  ['m64_forward_batch', 2], ['m64_max_batch', 2], ['m64_tok_load', 2], ['m64_tok_encode', 2], ['m64_tok_piece', 2],
  ['m64_tok_bos', 2], ['m64_tok_eos', 2], ['m64_sampler_seed', 2], ['m64_sample', 2],
  ['m64_tok_find', 3], ['m64_tok_is_eog', 3],
  ['m64_sample_ex', 4], ['m64_chat_kind', 4], ['m64_chat_turn', 4], ['m64_chat_end', 4],
  ['m64_cache_open', 5], ['m64_cache_acquire', 5], ['m64_cache_place', 5], ['m64_cache_release', 5],
  ['m64_cache_slot_of', 5], ['m64_cache_slot_addr', 5], ['m64_cache_slots', 5], ['m64_cache_evictions', 5],
  ['m64_tok_max_ids', 5],
];

// The module ABI version the page runs: 5, whose module chooses where each layer goes in its
// cache (module/cache.h), so the page needs every export up to it.
export const PAGE_ABI = 5;
export const REQUIRED_EXPORTS = MODULE_EXPORTS.filter(([, since]) => since <= PAGE_ABI).map(([name]) => name);
