// Bounds on the sizes that outside files declare (data bytes, sample counts, file sizes), checked before allocating.
#pragma once

#include <cstdint>
#include <string_view>

#include "compress/support/status.h"

namespace compress {

// Note [Resource limits]
// A hostile or broken file can declare any size: an IDX header 4 billion
// images, a gzip stream that inflates without end, a recipe that is really
// /dev/zero. Every reader checks what a file declares against one of these
// limits BEFORE it allocates or reads that much, and the error names the
// limit and how to raise it: each has an environment variable holding a byte
// count (suffixes K, M, G, T: powers of 1024), e.g.
//   COMPRESS_MAX_DATASET_BYTES=64G ctk eval model.cmf --data idx:big-images,big-labels
// The defaults allow everything compress's users ordinarily load (the full
// Fashion-MNIST train set is 188 MB as f32) with room to spare.
enum class Limit {
  kRecipeBytes,   // a recipe file (COMPRESS_MAX_RECIPE_BYTES, default 16M)
  kDatasetBytes,  // a dataset's decoded samples in memory (COMPRESS_MAX_DATASET_BYTES, default 8G)
  kNpyBytes,      // one .npy file (COMPRESS_MAX_NPY_BYTES, default 8G)
  kModelBytes,    // a model file read into memory, e.g. TorchScript (COMPRESS_MAX_MODEL_BYTES, default 16G)
};

struct LimitInfo {
  Limit limit;
  std::string_view env;          // environment variable that overrides the default
  uint64_t default_bytes;
  std::string_view what;         // "recipe file", for messages
};

const LimitInfo& limit_info(Limit limit);
// The limit in bytes: the environment variable when it holds a valid size,
// otherwise the default (an invalid value is reported once as a warning).
uint64_t limit_bytes(Limit limit);
// Ok when `bytes` is within the limit; otherwise kResourceExhausted naming
// `where`, the size, the limit and the variable to raise it.
Status check_limit(Limit limit, uint64_t bytes, std::string_view where);

// "12345678" or "64G" (K, M, G, T: powers of 1024) as a byte count; false on
// anything else or on overflow.
bool parse_byte_size(std::string_view text, uint64_t* bytes);

}  // namespace compress
