// lowrank.cp: a k x k conv2d as 1x1 (to R), k x 1 and 1 x k depthwise convs, and 1x1 (to the outputs): CP-ALS of rank
// R.
#include "compress/lowrank/decompose.h"
#include "factorize.h"

namespace compress::lowrank {
namespace {

using detail::ChainLayer;
using detail::Factorization;

std::string skip_reason(const analysis::WeightedLayer& layer) {
  if (!layer.node->is(ir::OpKind::conv2d)) return "not a convolution (lowrank.svd factorizes linears)";
  const ir::Shape& w = layer.weight->shape();
  if (w[2] < 2 || w[3] < 2) return "its kernel has a side of 1 (lowrank.svd factorizes 1x1 convolutions)";
  if (layer.node->attr_int("groups") != 1) return "a grouped or depthwise convolution";
  return "";
}

ir::AttributeMap conv_attrs(std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                            int64_t groups) {
  return {{"stride", std::move(stride)},
          {"padding", std::move(padding)},
          {"dilation", std::move(dilation)},
          {"groups", groups}};
}

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
  const auto& stride = layer.node->attr_ints("stride");
  const auto& pad = layer.node->attr_ints("padding");  // [top, left, bottom, right]
  const auto& dil = layer.node->attr_ints("dilation");
  Factorization f;
  f.rank = rank;
  f.relative_error = cp.relative_error;
  f.iterations = cp.iterations;
  f.chain.push_back(ChainLayer{ir::OpKind::conv2d,
                               ir::Tensor::from_vector<float>(ir::DType::kF32, {rank, c, 1, 1}, cp.first),
                               conv_attrs({1, 1}, {0, 0, 0, 0}, {1, 1}, 1), ".cp_in"});
  f.chain.push_back(ChainLayer{ir::OpKind::conv2d,
                               ir::Tensor::from_vector<float>(ir::DType::kF32, {rank, 1, kh, 1}, cp.vertical),
                               conv_attrs({stride[0], 1}, {pad[0], 0, pad[2], 0}, {dil[0], 1}, rank), ".cp_v"});
  f.chain.push_back(ChainLayer{ir::OpKind::conv2d,
                               ir::Tensor::from_vector<float>(ir::DType::kF32, {rank, 1, 1, kw}, cp.horizontal),
                               conv_attrs({1, stride[1]}, {0, pad[1], 0, pad[3]}, {1, dil[1]}, rank), ".cp_h"});
  f.chain.push_back(ChainLayer{ir::OpKind::conv2d,
                               ir::Tensor::from_vector<float>(ir::DType::kF32, {o, rank, 1, 1}, cp.last),
                               conv_attrs({1, 1}, {0, 0, 0, 0}, {1, 1}, 1), ".cp_out"});
  return f;
}

const detail::Method kCp{"lowrank.cp", skip_reason, factorize};

}  // namespace

Expected<pass::PassResult> CpPass::run(ir::Graph& graph, pass::PassContext& context) {
  return detail::factorize_layers(graph, kCp, options_, context);
}

}  // namespace compress::lowrank
