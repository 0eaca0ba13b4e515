// cache_policy_test: the layer cache's policy (module/cache.h), the one copy both hosts run:
// m64run's pager links it, the page calls it as the module's m64_cache_* exports.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

extern "C" {
#include "cache.h"
}

namespace {

constexpr uint64_t kPage = M64_CACHE_PAGE;

// A cache over layers of these sizes (pages), in `bytes` at offset `off`.
struct Cache {
  std::vector<uint32_t> pages;
  std::vector<uint64_t> mem;
  m64_cache c{};
  m64_cache_need need{};
  int rc = 0;
  Cache(std::vector<uint32_t> p, uint32_t n_blocks, uint64_t bytes, uint32_t extra = 0, uint32_t off = 1u << 20)
      : pages(std::move(p)) {
    const uint32_t n = (uint32_t)pages.size();
    uint64_t own = 0;
    for (uint32_t x : pages) own += x;
    need = m64_cache_needs(pages.data(), n, n_blocks, extra, own);
    mem.assign(m64_cache_mem_bytes(n, n_blocks) / 8 + 1, 0);
    rc = m64_cache_init(&c, mem.data(), pages.data(), n, n_blocks, extra, &need, off, bytes, nullptr, nullptr);
  }
  // The module acquires layer: returns its slot, placing it where the policy says if missing.
  int32_t acquire(uint32_t layer) {
    int32_t s = m64_cache_touch(&c, layer);
    if (s < 0) {
      s = m64_cache_choose(&c, layer, 1);
      if (s < 0) return -1;
      m64_cache_assign(&c, s, layer);
      m64_cache_loaded(&c, s);
    }
    return s;
  }
};

TEST(CachePolicy, EveryLayerInAPlaceOfItsOwnWhenAllFit) {
  Cache k({4, 2, 2, 3}, 3, 11 * kPage);
  ASSERT_EQ(k.rc, 0);
  EXPECT_EQ(k.need.own_total, 11u);
  EXPECT_EQ(k.need.least, 4u + 3u);
  EXPECT_FALSE(m64_cache_streams(&k.c));
  ASSERT_EQ(k.c.n_slots, 4u);
  const uint32_t want[] = {1u << 20, (1u << 20) + 4 * kPage, (1u << 20) + 6 * kPage, (1u << 20) + 8 * kPage};
  for (uint32_t s = 0; s < 4; s++) EXPECT_EQ(k.c.slots[s].addr, want[s]) << s;
  for (int token = 0; token < 3; token++)
    for (uint32_t l : {0u, 1u, 2u, 3u, 0u}) EXPECT_EQ(k.acquire(l), (int32_t)l);
  EXPECT_EQ(k.c.evictions, 0u);
  EXPECT_EQ(k.c.resident, 4u);
}

TEST(CachePolicy, TooSmallForTheGlobalsAndTheLargestBlockIsRefused) {
  Cache k({4, 2, 5, 3}, 3, 8 * kPage);  // least: 4 + 5
  EXPECT_EQ(k.need.least, 9u);
  EXPECT_EQ(k.rc, -1);
}

// Blocks in a fixed cycle through K slots: Belady's choice pages in between N - K and
// N - K + 1 blocks a token, where LRU would page every block in every token.
TEST(CachePolicy, BlocksStreamThroughSharedSlotsEvictingTheOneNeededLast) {
  const uint32_t n_blocks = 6;
  std::vector<uint32_t> pages(1 + n_blocks, 2);
  pages[0] = 3;
  Cache k(pages, n_blocks, (3 + 3 * 2) * kPage);  // globals + 3 block slots
  ASSERT_EQ(k.rc, 0);
  ASSERT_TRUE(k.c.shared);
  ASSERT_EQ(k.c.n_slots, 4u);
  const int tokens = 12;
  uint64_t first = 0;
  for (int token = 0; token <= tokens; token++) {
    k.acquire(0);
    for (uint32_t l = 1; l <= n_blocks; l++) {
      const int32_t s = k.acquire(l);
      ASSERT_GE(s, 1);
      ASSERT_LT(s, 4);
      EXPECT_EQ(k.c.slots[s].layer, (int32_t)l);
      EXPECT_EQ(k.c.slot_of[l], s);
    }
    if (token == 0) first = k.c.evictions;
  }
  const uint64_t per = k.c.evictions - first;
  EXPECT_GE(per, (uint64_t)tokens * (n_blocks - 3));
  EXPECT_LE(per, (uint64_t)tokens * (n_blocks - 3 + 1));
  EXPECT_EQ(k.c.slot_of[0], 0) << "the globals stay";
  EXPECT_EQ(k.c.resident, 4u);
}

TEST(CachePolicy, APlaceAheadIsRefusedWhereItWouldEvictABlockNeededSooner) {
  const uint32_t n_blocks = 6;
  std::vector<uint32_t> pages(1 + n_blocks, 1);
  Cache k(pages, n_blocks, 4 * kPage);  // globals + 3 slots
  ASSERT_EQ(k.rc, 0);
  for (uint32_t l = 0; l <= 3; l++) k.acquire(l);  // slots hold blocks 1..3; block 3 runs
  // ahead of block 4, the candidates are blocks 1, 2 (needed after 4, 5, 6) and 3 (in use? no:
  // released at once here), all farther than block 4 itself: allowed
  EXPECT_GE(m64_cache_choose(&k.c, 4, 0), 1);
  // block 6 would evict a block needed before it: not placed ahead, but on demand it is
  k.c.cursor = 0;  // block 1 just ran: blocks 2 and 3 come before 6
  k.c.slots[k.c.slot_of[1]].in_use = 1;
  EXPECT_EQ(m64_cache_choose(&k.c, 6, 0), -1);
  EXPECT_GE(m64_cache_choose(&k.c, 6, 1), 1);
  // held and loading slots are never chosen
  for (uint32_t s = 1; s < k.c.n_slots; s++) k.c.slots[s].in_use = 1;
  EXPECT_EQ(m64_cache_choose(&k.c, 6, 1), -1);
  k.c.slots[2].in_use = 0;
  k.c.slots[2].loading = 1;
  EXPECT_EQ(m64_cache_choose(&k.c, 6, 1), -1);
}

TEST(CachePolicy, PreferStreamedKeepsSlotsThatHeldOneBlockForGood) {
  const uint32_t n_blocks = 8;
  std::vector<uint32_t> pages(1 + n_blocks, 1);
  Cache k(pages, n_blocks, 5 * kPage);  // globals + 4 slots
  ASSERT_EQ(k.rc, 0);
  k.c.prefer_streamed = 1;
  for (int token = 0; token < 5; token++)
    for (uint32_t l = 1; l <= n_blocks; l++) k.acquire(l);
  // one slot streams the blocks the others do not keep; three keep their first block
  uint32_t kept = 0;
  for (uint32_t s = 1; s < k.c.n_slots; s++) kept += k.c.slots[s].used == 1;
  EXPECT_EQ(kept, 3u);
}

TEST(CachePolicy, ExpertsGoToTheSlotOfTheExpertUsedLeastOften) {
  // globals, 1 block, 4 experts of 1 page; room for the block and 2 expert slots
  Cache k({1, 2, 1, 1, 1, 1}, 1, (1 + 2 + 2) * kPage);
  ASSERT_EQ(k.rc, 0);
  ASSERT_TRUE(k.c.experts_shared);
  ASSERT_EQ(k.c.n_slots - k.c.exp_lo, 2u);
  for (int i = 0; i < 5; i++) k.acquire(2);  // expert 0 used often
  k.acquire(3);                              // expert 1 once
  const int32_t s1 = k.c.slot_of[3];
  EXPECT_EQ(k.acquire(4), s1) << "expert 1 (1 use) goes, not expert 0 (5)";
  EXPECT_GE(k.c.slot_of[2], 0);
  EXPECT_EQ(k.c.slot_of[3], -1);
  // ties: the least recently used goes
  k.acquire(5), k.acquire(4);
  EXPECT_GE(k.c.slot_of[4], 0);
}

TEST(CachePolicy, ExpertCountsHalveSoThatAnExpertNoLongerChosenLosesItsPlace) {
  Cache k({1, 2, 1, 1, 1}, 1, (1 + 2 + 2) * kPage);
  ASSERT_EQ(k.rc, 0);
  for (int i = 0; i < 100; i++) k.acquire(2);
  for (uint32_t i = 0; i < 3 * M64_CACHE_AGE_EVERY; i++) k.acquire(3);
  EXPECT_LT(k.c.uses[0], 100u) << "halved";
  k.acquire(4);
  EXPECT_EQ(k.c.slot_of[2], -1) << "expert 0 has not been chosen for a long time";
}

TEST(CachePolicy, BlocksStayWholeBesideTwoExpertSlotsPerBlock) {
  // globals 1, 2 blocks of 2, 3 experts per block of 1 (11 pages in all): whole blocks
  // need 4 pages beside 2 * 2 expert slots
  const std::vector<uint32_t> pages{1, 2, 2, 1, 1, 1, 1, 1, 1};
  Cache k(pages, 2, (1 + 4 + 4) * kPage);
  ASSERT_EQ(k.rc, 0);
  EXPECT_FALSE(k.c.shared);
  EXPECT_TRUE(k.c.experts_shared);
  EXPECT_EQ(k.c.blk_end, 3u);
  EXPECT_EQ(k.c.n_slots - k.c.exp_lo, 4u);
  Cache s(pages, 2, (1 + 4 + 3) * kPage);
  ASSERT_EQ(s.rc, 0);
  EXPECT_TRUE(s.c.shared) << "one page short: the blocks share slots";
}

TEST(CachePolicy, TheWorkspaceGrowsToTheModelOrStopsAtTheUsersCap) {
  const m64_cache_need need{100, 10};  // pages
  const uint64_t used = 8u << 20, taken = used + M64_CACHE_HEADROOM + kPage, cap4 = 4ull << 30;
  m64_cache_fit f = m64_cache_fit_in(used, cap4, 0, &need);
  EXPECT_EQ(f.taken, taken);
  EXPECT_EQ(f.want, taken + 100 * kPage) << "no cap: what the whole model needs";
  EXPECT_EQ(f.bytes, 100 * kPage);
  f = m64_cache_fit_in(used, taken + 50 * kPage + 100, 1, &need);
  EXPECT_EQ(f.bytes, 50 * kPage) << "the user's cap, in whole pages";
  f = m64_cache_fit_in(used, taken + 9 * kPage, 1, &need);
  EXPECT_EQ(f.bytes, 0u) << "less than the globals and the largest block";
  EXPECT_EQ(f.suggest, (taken + 10 * kPage) / 1048576 + 1);
  f = m64_cache_fit_in(used, taken + 5 * kPage, 0, &need);  // a 4 GiB limit the model outgrows
  EXPECT_EQ(f.want, taken + 5 * kPage);
  EXPECT_EQ(f.bytes, 0u);
}

}  // namespace
