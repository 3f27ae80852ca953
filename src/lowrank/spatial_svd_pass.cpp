// lowrank.spatial_svd: a k x k conv2d as a (k x 1) conv to r channels, then a (1 x k) conv (AIMET's spatial SVD).
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
  const int64_t full = std::min(c * kh, o * kw);
  int64_t rank = 0;
  if (options.rank) {
    if (*options.rank > full) return invalid_argument("rank {} is above the full spatial rank {}", *options.rank, full);
    rank = *options.rank;
  } else if (options.energy) {
    COMPRESS_ASSIGN_OR_RETURN(std::vector<double> s, singular_values(spatial_matrix(w, o, c, kh, kw), c * kh, o * kw));
    rank = rank_for_energy(s, *options.energy);
  } else {
    // Per output image: the (k x 1) conv writes r x Ho x W_in values of c*kh
    // MACs each, the (1 x k) conv o x Ho x Wo values of r*kw MACs.
    const double ho = static_cast<double>(shape.output[2]), wo = static_cast<double>(shape.output[3]);
    const double win = static_cast<double>(shape.input[3]);
    const double per_rank = static_cast<double>(c * kh) * ho * win + static_cast<double>(o * kw) * ho * wo;
    const double dense = static_cast<double>(o * c * kh * kw) * ho * wo;
    rank =
        detail::largest_rank_within(full, ratio * dense, [&](int64_t r) { return static_cast<double>(r) * per_rank; });
  }
  rank = detail::round_rank(rank, options.round_to, full);
  COMPRESS_ASSIGN_OR_RETURN(SpatialFactors sf, spatial_svd(w, o, c, kh, kw, rank));
  Factorization f;
  f.rank = rank;
  f.relative_error = sf.relative_error;
  f.chain.push_back(
      detail::conv_layer({rank, c, kh, 1}, sf.vertical, detail::vertical_attrs(*layer.node, 1), ".spatial_v"));
  f.chain.push_back(
      detail::conv_layer({o, rank, 1, kw}, sf.horizontal, detail::horizontal_attrs(*layer.node, 1), ".spatial_h"));
  return f;
}

const detail::Method kSpatialSvd{"lowrank.spatial_svd", detail::separable_skip_reason, factorize};

}  // namespace

Expected<pass::PassResult> SpatialSvdPass::run(ir::Graph& graph, pass::PassContext& context) {
  return detail::factorize_layers(graph, kSpatialSvd, options_, context);
}

}  // namespace compress::lowrank
