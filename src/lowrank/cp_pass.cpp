// lowrank.cp: a k x k conv2d as 1x1 (to R), k x 1 and 1 x k depthwise convs, and 1x1 (to the outputs): CP-ALS of rank
// R.
#include "compress/lowrank/decompose.h"
#include "factorize.h"

namespace compress::lowrank {
namespace {

using detail::ChainLayer;
using detail::Factorization;

Expected<Factorization> factorize(const analysis::WeightedLayer& layer, const detail::LayerShape& shape,
                                  const std::vector<float>& w, const LowrankOptions& options, double ratio,
                                  const prune::LayerInputStats* /*inputs*/) {
  const int64_t o = shape.weight[0], c = shape.weight[1], kh = shape.weight[2], kw = shape.weight[3];
  if (options.energy) {
    return invalid_argument("energy is not defined for a CP decomposition (no singular values): use rank or ratio");
  }
  // The largest rank worth having: beyond o*c*kh*kw / (o + c + kh + kw) the
  // factors hold more numbers than the weight.
  const int64_t full = std::max<int64_t>(1, (o * c * kh * kw) / (o + c + kh + kw));
  int64_t rank = 0;
  if (options.rank) {
    if (*options.rank > full) {
      return invalid_argument("rank {} is above {}, where the CP factors would hold more numbers than the weight",
                              *options.rank, full);
    }
    rank = *options.rank;
  } else {
    // Per output image: 1x1 at the input's size, the k x 1 depthwise at (Ho, W_in), the 1 x k at the output's
    // size, and the last 1x1 there too.
    const double in_px = static_cast<double>(shape.input[2] * shape.input[3]);
    const double ho = static_cast<double>(shape.output[2]), wo = static_cast<double>(shape.output[3]);
    const double win = static_cast<double>(shape.input[3]);
    const double per_rank = static_cast<double>(c) * in_px + static_cast<double>(kh) * ho * win +
                            static_cast<double>(kw) * ho * wo + static_cast<double>(o) * ho * wo;
    const double dense = static_cast<double>(o * c * kh * kw) * ho * wo;
    rank =
        detail::largest_rank_within(full, ratio * dense, [&](int64_t r) { return static_cast<double>(r) * per_rank; });
  }
  rank = detail::round_rank(rank, options.round_to, full);
  COMPRESS_ASSIGN_OR_RETURN(CpFactors cp, cp_als(w, o, c, kh, kw, rank, static_cast<int>(options.max_iterations)));
  Factorization f;
  f.rank = rank;
  f.relative_error = cp.relative_error;
  f.iterations = cp.iterations;
  f.chain.push_back(detail::conv_layer({rank, c, 1, 1}, cp.first, detail::pointwise_attrs(), ".cp_in"));
  f.chain.push_back(
      detail::conv_layer({rank, 1, kh, 1}, cp.vertical, detail::vertical_attrs(*layer.node, rank), ".cp_v"));
  f.chain.push_back(
      detail::conv_layer({rank, 1, 1, kw}, cp.horizontal, detail::horizontal_attrs(*layer.node, rank), ".cp_h"));
  f.chain.push_back(detail::conv_layer({o, rank, 1, 1}, cp.last, detail::pointwise_attrs(), ".cp_out"));
  return f;
}

const detail::Method kCp{"lowrank.cp", detail::separable_skip_reason, factorize};

}  // namespace

Expected<pass::PassResult> CpPass::run(ir::Graph& graph, pass::PassContext& context) {
  return detail::factorize_layers(graph, kCp, options_, context);
}

}  // namespace compress::lowrank
