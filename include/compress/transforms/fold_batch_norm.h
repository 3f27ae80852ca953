// transforms.fold_batch_norm: folds inference batch norm into the conv2d/linear that feeds it.
#pragma once

#include "compress/pass/pass.h"
#include "compress/pass/registry.h"

namespace compress::transforms {

// y = gamma * (conv(x, w) + b - mean) / sqrt(var + eps) + beta becomes
// conv(x, w * k) + (b - mean) * k + beta with k = gamma / sqrt(var + eps),
// per output channel, computed in double and stored as f32. Folds only when
// the conv/linear output feeds nothing but the batch norm, its weight, bias
// and the batch-norm statistics are constants, and the channel axis is 1.
class FoldBatchNormPass : public pass::Pass {
 public:
  struct Options {};
  FoldBatchNormPass() = default;
  explicit FoldBatchNormPass(Options options) : options_(options) {}
  std::string name() const override { return "transforms.fold_batch_norm"; }
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;

 private:
  Options options_;
};

Status register_transform_passes(pass::PassRegistry& registry);

}  // namespace compress::transforms
