// Finding prunable layers, selecting them by pattern, and moving weights to and from the canonical view.
#include "compress/prune/prunable_layers.h"

#include <fnmatch.h>

#include <algorithm>

#include "compress/analysis/weighted_layers.h"
#include "compress/ir/tensor.h"
#include "compress/support/logging.h"

namespace compress::prune {
namespace {

std::string layer_list(const std::vector<PrunableLayer>& layers) {
  std::string out;
  for (const PrunableLayer& l : layers) {
    if (out.size() > 300) {
      out += ", ...";
      break;
    }
    out += (out.empty() ? "" : ", ") + l.name();
  }
  return out.empty() ? "(none)" : out;
}

}  // namespace

std::vector<PrunableLayer> prunable_layers(const ir::Graph& graph) {
  std::vector<PrunableLayer> out;
  // Any f32 weighted layer of the op table; its bias does not matter here.
  analysis::WeightedLayerQuery query;
  query.constant_bias = false;
  for (const analysis::WeightedLayer& layer : analysis::weighted_layers(graph, query)) {
    PrunableLayer l;
    l.node = layer.node;
    l.weight = layer.weight;
    const ir::Shape& shape = layer.weight->shape();
    if (shape.size() == 4) {  // conv: [O, C/groups, kh, kw] as [O, C/groups*kh*kw]
      ir::matrix_dims(shape, &l.rows, &l.cols);
      l.groups = layer.node->attr_int("groups");
    } else if (layer.spec.weight_out_axis == 0) {
      l.rows = shape[0];
      l.cols = shape[1];
    } else {  // matmul x @ W, W [in, out]: canonical is W^T
      l.rows = shape[1];
      l.cols = shape[0];
      l.transposed = true;
    }
    // A weight shared by two layers (tied embeddings) would be pruned by
    // whichever layer came last with the other's statistics: leave it.
    if (l.weight->uses().size() != 1) {
      log_info("prune: '{}' shares its weight '{}' with another node; left dense", l.node->name(), l.weight->name());
      continue;
    }
    if (l.rows <= 0 || l.cols <= 0) continue;
    out.push_back(l);
  }
  return out;
}

bool glob_match(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

Expected<std::vector<SelectedLayer>> select_layers(const ir::Graph& graph, const LayerSelectionOptions& options) {
  const std::vector<PrunableLayer> all = prunable_layers(graph);
  const std::string& who = options.pass_name;
  auto check_matches = [&](const std::string& pattern, const char* what) -> Status {
    for (const PrunableLayer& l : all) {
      if (glob_match(pattern, l.name())) return Status::ok();
    }
    return invalid_argument("{}: {} pattern '{}' matches no prunable layer (conv2d/linear/matmul with a constant f32 "
                            "weight); the layers are: {}",
                            who, what, pattern, layer_list(all));
  };
  for (const auto& [pattern, ratio] : options.overrides) {
    COMPRESS_RETURN_IF_ERROR(check_matches(pattern, "layers"));
  }
  for (const std::string& pattern : options.exclude) COMPRESS_RETURN_IF_ERROR(check_matches(pattern, "exclude"));

  std::vector<SelectedLayer> out;
  for (const PrunableLayer& l : all) {
    if (std::find(options.ops.begin(), options.ops.end(), l.node->kind()) == options.ops.end()) continue;
    if (l.params() < options.min_params) continue;
    bool excluded = false;
    for (const std::string& pattern : options.exclude) excluded = excluded || glob_match(pattern, l.name());
    if (excluded) continue;
    SelectedLayer s;
    s.layer = l;
    s.ratio = options.ratio;
    for (const auto& [pattern, ratio] : options.overrides) {
      if (glob_match(pattern, l.name())) {
        s.ratio = ratio;
        s.overridden = true;
        break;
      }
    }
    out.push_back(s);
  }
  return out;
}

Expected<std::vector<float>> canonical_weights(const PrunableLayer& layer) {
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, layer.weight->constant().to_dense());
  const float* src = dense.data<float>();
  std::vector<float> out(static_cast<size_t>(layer.rows * layer.cols));
  if (!layer.transposed) {
    std::copy(src, src + out.size(), out.begin());
  } else {
    // stored [cols, rows]
    for (int64_t i = 0; i < layer.cols; ++i) {
      for (int64_t o = 0; o < layer.rows; ++o) out[static_cast<size_t>(o * layer.cols + i)] = src[i * layer.rows + o];
    }
  }
  return out;
}

Status store_weights(const PrunableLayer& layer, const std::vector<float>& canonical, ir::SparseFormat format,
                     int64_t n, int64_t m) {
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, ir::Tensor::zeros(ir::DType::kF32, layer.weight->shape()));
  float* dst = dense.data<float>();
  if (!layer.transposed) {
    std::copy(canonical.begin(), canonical.end(), dst);
  } else {
    for (int64_t i = 0; i < layer.cols; ++i) {
      for (int64_t o = 0; o < layer.rows; ++o) dst[i * layer.rows + o] = canonical[static_cast<size_t>(o * layer.cols + i)];
    }
  }
  ir::Tensor stored;
  switch (format) {
    case ir::SparseFormat::kMask: {
      COMPRESS_ASSIGN_OR_RETURN(stored, ir::to_mask_layout(dense));
      break;
    }
    case ir::SparseFormat::kCsr: {
      COMPRESS_ASSIGN_OR_RETURN(stored, ir::to_csr_layout(dense));
      break;
    }
    case ir::SparseFormat::kNM: {
      COMPRESS_ASSIGN_OR_RETURN(stored, ir::to_nm_layout(dense, n, m));
      break;
    }
    default:
      return invalid_argument("prune: cannot store '{}' as {}", layer.weight->name(), ir::sparse_format_name(format));
  }
  layer.weight->set_constant(std::move(stored));
  return Status::ok();
}

}  // namespace compress::prune
