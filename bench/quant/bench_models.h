// Shared by the bench/quant programs: loading a model file and random input images.
#pragma once

#include <random>
#include <string>

#include "compress/io/cmf.h"
#include "compress/ir/graph.h"
#ifdef COMPRESS_HAVE_TORCH
#include "compress/torch/import.h"
#endif

namespace compress::bench {

// A .cmf, or (with LibTorch) a TorchScript .pt that records its input shape.
inline Expected<ir::Graph> load_model(const std::string& path) {
#ifdef COMPRESS_HAVE_TORCH
  if (path.size() > 3 && path.substr(path.size() - 3) == ".pt") return compress::torch::import_file(path);
#endif
  return io::load_cmf(path);
}

// `count` images of `shape` (dim 0 replaced), N(0, 1) from `seed`.
inline Expected<ir::Tensor> random_images(ir::Shape shape, int64_t count, uint32_t seed) {
  shape[0] = count;
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, ir::Tensor::zeros(ir::DType::kF32, shape));
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

}  // namespace compress::bench
