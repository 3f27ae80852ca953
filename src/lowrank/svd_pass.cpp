// lowrank.svd: a linear or 1x1 conv2d W[m, n] as two layers, U[m, r] after V[r, n] (truncated SVD).
#include "compress/lowrank/decompose.h"
#include "compress/support/logging.h"
#include "factorize.h"

namespace compress::lowrank {
namespace {

using detail::ChainLayer;
using detail::Factorization;

bool is_pointwise_conv(const analysis::WeightedLayer& layer) {
  const ir::Shape& w = layer.weight->shape();
  return layer.node->is(ir::OpKind::conv2d) && w[2] == 1 && w[3] == 1;
}

std::string skip_reason(const analysis::WeightedLayer& layer) {
  if (layer.node->is(ir::OpKind::linear))
    return layer.weight->shape().size() == 2 ? "" : "a linear without a 2-D weight";
  if (!is_pointwise_conv(layer)) return "a k x k convolution (lowrank.spatial_svd or lowrank.tucker2 factorize those)";
  if (layer.node->attr_int("groups") != 1) return "a grouped convolution";
  return "";
}

// The rank under the options' rule (Note [Low-rank ratio and ranks]); the
// chain costs r * (m + n) MACs per output position against m * n.
Expected<int64_t> choose_rank(const std::vector<float>& w, int64_t m, int64_t n, const LowrankOptions& options,
                              double ratio) {
  const int64_t full = std::min(m, n);
  int64_t rank = 0;
  if (options.rank) {
    if (*options.rank > full)
      return invalid_argument("rank {} is above the full rank {} of a {}x{} weight", *options.rank, full, m, n);
    rank = *options.rank;
  } else if (options.energy) {
    COMPRESS_ASSIGN_OR_RETURN(std::vector<double> s, singular_values(w, m, n));
    rank = rank_for_energy(s, *options.energy);
  } else {
    const double dense = static_cast<double>(m) * static_cast<double>(n);
    rank =
        detail::largest_rank_within(full, ratio * dense, [&](int64_t r) { return static_cast<double>(r * (m + n)); });
  }
  return detail::round_rank(rank, options.round_to, full);
}

Expected<Factorization> factorize(const analysis::WeightedLayer& layer, const detail::LayerShape& shape,
                                  const std::vector<float>& w, const LowrankOptions& options, double ratio,
                                  const prune::LayerInputStats* inputs) {
  const int64_t m = shape.weight[0], n = ir::numel(shape.weight) / m;
  Factorization f;
  // Note [Activation-aware SVD]: the SVD of W T (its spectrum also drives the energy rule).
  std::optional<InputTransform> transform;
  if (inputs != nullptr && options.activation_aware == "whiten") {
    auto t = whitening_transform(inputs->hessian, n);
    if (t.has_value()) {
      transform = std::move(*t);
    } else {
      f.whitening_fallback = true;
      log_warning("{}: {}: {}; plain SVD instead", "lowrank.svd", layer.name(), t.status().message());
    }
  } else if (inputs != nullptr && options.activation_aware == "asvd") {
    transform = scaling_transform(inputs->sq_norms, inputs->rows_seen, options.alpha);
  }
  COMPRESS_ASSIGN_OR_RETURN(int64_t rank,
                            choose_rank(transform ? transformed(w, m, n, *transform) : w, m, n, options, ratio));
  SvdFactors svd;
  if (transform) {
    double output_error = 0;
    COMPRESS_ASSIGN_OR_RETURN(svd, transformed_svd(w, m, n, rank, *transform, &output_error));
    f.output_error = output_error;
  } else {
    COMPRESS_ASSIGN_OR_RETURN(svd, truncated_svd(w, m, n, rank));
  }
  f.rank = rank;
  f.relative_error = svd.relative_error;
  const bool conv = layer.node->is(ir::OpKind::conv2d);
  const ir::Shape first_shape = conv ? ir::Shape{rank, n, 1, 1} : ir::Shape{rank, n};
  const ir::Shape second_shape = conv ? ir::Shape{m, rank, 1, 1} : ir::Shape{m, rank};
  ir::Tensor first = ir::Tensor::from_vector<float>(ir::DType::kF32, first_shape, svd.first);
  ir::Tensor second = ir::Tensor::from_vector<float>(ir::DType::kF32, second_shape, svd.second);
  ir::AttributeMap first_attrs, second_attrs;
  if (conv) {
    first_attrs = layer.node->attrs();  // stride and padding stay on the first 1x1 conv
    second_attrs = detail::pointwise_attrs();
  }
  const ir::OpKind op = conv ? ir::OpKind::conv2d : ir::OpKind::linear;
  f.chain.push_back(ChainLayer{op, std::move(first), first_attrs, ".svd_v"});
  f.chain.push_back(ChainLayer{op, std::move(second), second_attrs, ".svd_u"});
  return f;
}

const detail::Method kSvd{"lowrank.svd", skip_reason, factorize};

}  // namespace

Expected<pass::PassResult> SvdPass::run(ir::Graph& graph, pass::PassContext& context) {
  return detail::factorize_layers(graph, kSvd, options_, context);
}

}  // namespace compress::lowrank
