// The trained Fashion-MNIST fixture (tests/fixtures/models/fashion_cnn.cmf)
// and the dataset it was trained on, as every test layer loads them.
#pragma once

#include <memory>
#include <string>

#include "compress/eval/dataset.h"
#include "compress/io/cmf.h"

namespace compress::test {

// The normalization the fixture was trained with (pixels in [0, 1]).
inline const eval::Normalization kFashionNorm{0.2860f, 0.3530f};

inline std::string fashion_cnn_path() {
  return std::string(COMPRESS_TEST_SOURCE_DIR) + "/tests/fixtures/models/fashion_cnn.cmf";
}

inline ir::Graph fashion_cnn() { return io::load_cmf(fashion_cnn_path()).value(); }

// The first `count` samples (-1: all) of fashion-mnist:`split`, normalized.
inline std::unique_ptr<eval::DataSource> fashion_data(const std::string& split, int64_t count) {
  return eval::open_dataset("fashion-mnist:" + split, {kFashionNorm, count}).value();
}

}  // namespace compress::test
