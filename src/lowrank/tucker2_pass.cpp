// lowrank.tucker2: a k x k conv2d as 1x1 (to r_in), the k x k core (r_in -> r_out) and 1x1 (to the outputs); HOSVD +
// HOOI.
#include <cmath>

#include "compress/lowrank/decompose.h"
#include "factorize.h"

namespace compress::lowrank {
namespace {

using detail::ChainLayer;
using detail::Factorization;

std::string skip_reason(const analysis::WeightedLayer& layer) {
  if (!layer.node->is(ir::OpKind::conv2d)) return "not a convolution (lowrank.svd factorizes linears)";
  const ir::Shape& w = layer.weight->shape();
  if (w[2] * w[3] == 1) return "a 1x1 convolution (lowrank.svd factorizes those)";
  if (layer.node->attr_int("groups") != 1) return "a grouped or depthwise convolution";
  return "";
}

Expected<Factorization> factorize(const analysis::WeightedLayer& layer, const detail::LayerShape& shape,
                                  const std::vector<float>& w, const LowrankOptions& options, double ratio,
                                  const prune::LayerInputStats* /*inputs*/) {
  const int64_t o = shape.weight[0], c = shape.weight[1], kh = shape.weight[2], kw = shape.weight[3];
  int64_t r_out = 0, r_in = 0;
  // r_in follows r_out in proportion to the channel counts (ratio rule).
  auto in_for = [&](int64_t ro) {
    return std::clamp<int64_t>(std::llround(static_cast<double>(ro) * static_cast<double>(c) / static_cast<double>(o)),
                               1, c);
  };
  if (options.rank) {
    if (*options.rank > std::max(o, c)) {
      return invalid_argument("rank {} is above the full Tucker-2 ranks (out {}, in {})", *options.rank, o, c);
    }
    r_out = std::min(*options.rank, o);
    r_in = std::min(*options.rank, c);
  } else if (options.energy) {
    COMPRESS_ASSIGN_OR_RETURN(std::vector<double> s0, mode_singular_values(w, o, c, kh, kw, 0));
    COMPRESS_ASSIGN_OR_RETURN(std::vector<double> s1, mode_singular_values(w, o, c, kh, kw, 1));
    r_out = rank_for_energy(s0, *options.energy);
    r_in = rank_for_energy(s1, *options.energy);
  } else {
    // Per output image: 1x1 at the input's size, the core and the last 1x1 at the output's.
    const double in_px = static_cast<double>(shape.input[2] * shape.input[3]);
    const double out_px = static_cast<double>(shape.output[2] * shape.output[3]);
    const double dense = static_cast<double>(o * c * kh * kw) * out_px;
    auto cost = [&](int64_t ro) {
      const double ri = static_cast<double>(in_for(ro));
      return ri * static_cast<double>(c) * in_px +
             static_cast<double>(ro) * ri * static_cast<double>(kh * kw) * out_px +
             static_cast<double>(o * ro) * out_px;
    };
    r_out = detail::largest_rank_within(o, ratio * dense, cost);
    r_in = in_for(r_out);
  }
  r_out = detail::round_rank(r_out, options.round_to, o);
  r_in = detail::round_rank(r_in, options.round_to, c);
  COMPRESS_ASSIGN_OR_RETURN(Tucker2Factors t,
                            tucker2(w, o, c, kh, kw, r_out, r_in, static_cast<int>(options.max_iterations)));
  Factorization f;
  f.rank = r_out;
  f.rank_in = r_in;
  f.relative_error = t.relative_error;
  f.hosvd_error = t.hosvd_error;
  f.iterations = t.iterations;
  f.chain.push_back(detail::conv_layer({r_in, c, 1, 1}, t.first, detail::pointwise_attrs(), ".tucker_in"));
  f.chain.push_back(detail::conv_layer({r_out, r_in, kh, kw}, t.core, layer.node->attrs(), ".tucker_core"));
  f.chain.push_back(detail::conv_layer({o, r_out, 1, 1}, t.last, detail::pointwise_attrs(), ".tucker_out"));
  return f;
}

const detail::Method kTucker2{"lowrank.tucker2", skip_reason, factorize};

}  // namespace

Expected<pass::PassResult> Tucker2Pass::run(ir::Graph& graph, pass::PassContext& context) {
  return detail::factorize_layers(graph, kTucker2, options_, context);
}

}  // namespace compress::lowrank
