// Shared by the bench/quant programs: loading a model file.
#pragma once

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

}  // namespace compress::bench
