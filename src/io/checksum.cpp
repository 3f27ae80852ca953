// checksum64: the .cmf integrity hash (definition in docs/cmf-format.md).
#include <cstdint>
#include <cstring>

#include "compress/io/cmf_format.h"

namespace compress::io::cmf {
namespace {

// Note [checksum64 design]
// The hash has to keep up with memory bandwidth: verifying a mapped 100 MB
// file may cost less than one extra read of it. A serial multiply chain
// (FNV-style) is latency bound at ~2 bytes/cycle, so the input is consumed in
// 64-byte stripes across 8 independent 64-bit lanes, each taking one 32x32->64
// multiply per word (a single SSE2/AVX2 instruction once vectorized). Each
// word is also added unmodified to the neighbouring lane, so a change to one
// word always changes the lane state (the product alone can cancel), and the
// per-KiB scramble and final avalanche are bijective per lane, so a single
// changed word is always detected. The constants are splitmix64 outputs of
// the seed 0x636d662d63686b31, forced odd.
constexpr uint64_t kLaneKeys[8] = {
    0xa73da08320e50e23ULL, 0xa02d3a688edb6a91ULL, 0x843e9d7bd9f97665ULL, 0xceaeb9b9a8e7e7b9ULL,
    0x94d9963805a0bc2fULL, 0xeb97025ceab2eda5ULL, 0x6950deb652dbf915ULL, 0x67d482baa03532d7ULL,
};
constexpr uint64_t kLaneInit[8] = {
    0xcf134564acb94395ULL, 0x6f9560530747ad0dULL, 0xa92ebc29811c41c5ULL, 0x196c80b5d62e4a4fULL,
    0xff53eaba04e2bab7ULL, 0xaf64a07f4c485405ULL, 0xf8813da86db6c699ULL, 0x945367785221c66fULL,
};
constexpr uint64_t kScramble = 0x2e042b1a4dc9a7a3ULL;
constexpr uint64_t kLengthMul = 0x1802fab22fbd6e61ULL;
constexpr uint64_t kMerge = 0x3ec6f6049892ed19ULL;
constexpr uint64_t kMix1 = 0xc097a66205094477ULL;
constexpr uint64_t kMix2 = 0xa73da08320e50e23ULL;
constexpr size_t kStripe = 64;
constexpr size_t kStripesPerBlock = 16;

inline uint64_t load_le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

inline void accumulate_stripe(uint64_t* __restrict acc, const uint8_t* __restrict p) {
  uint64_t w[8];
  for (int i = 0; i < 8; ++i) w[i] = load_le64(p + 8 * i);
  for (int i = 0; i < 8; ++i) {
    const uint64_t k = w[i] ^ kLaneKeys[i];
    acc[i] += (k & 0xffffffffULL) * (k >> 32);
    acc[i ^ 1] += w[i];
  }
}

inline void scramble(uint64_t* acc) {
  for (int i = 0; i < 8; ++i) acc[i] = (acc[i] ^ (acc[i] >> 47)) * kScramble;
}

inline uint64_t avalanche(uint64_t x) {
  x ^= x >> 31;
  x *= kMix1;
  x ^= x >> 29;
  x *= kMix2;
  x ^= x >> 32;
  return x;
}

}  // namespace

uint64_t checksum64(const void* data, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = kLaneInit[i];

  const size_t stripes = size / kStripe;
  size_t s = 0;
  for (; s + kStripesPerBlock <= stripes; s += kStripesPerBlock) {
    for (size_t j = 0; j < kStripesPerBlock; ++j) accumulate_stripe(acc, p + (s + j) * kStripe);
    scramble(acc);
  }
  for (; s < stripes; ++s) accumulate_stripe(acc, p + s * kStripe);
  // The tail is zero-padded to a stripe; the length mixed in below tells
  // "ab" from "ab\0".
  const size_t tail = size % kStripe;
  if (tail != 0) {
    uint8_t last[kStripe] = {};
    std::memcpy(last, p + stripes * kStripe, tail);
    accumulate_stripe(acc, last);
  }

  uint64_t h = static_cast<uint64_t>(size) * kLengthMul;
  for (int i = 0; i < 8; ++i) h = (h ^ avalanche(acc[i])) * kMerge;
  return avalanche(h);
}

}  // namespace compress::io::cmf
