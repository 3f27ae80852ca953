// Gradual magnitude pruning inside the fine-tuning loop (the cubic schedule of Zhu & Gupta).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "compress/distill/finetune.h"
#include "compress/ir/graph.h"
#include "compress/support/status.h"
#include "compress/torch/trainable_model.h"

namespace compress::distill {

// Note [Gradual pruning during fine-tuning]
// Every conv2d / linear / matmul weight (prune::prunable_layers) is
// re-pruned by magnitude, layer by layer, at steps start, start + frequency,
// ... and at `end`, to the cubic target prune::cubic_sparsity(initial, final,
// step - start, end - start); zeros already there count as pruned first, so
// the sparsity only rises. Between prune events the mask is held by zeroing
// the masked gradients before and the masked weights after every optimizer
// step (the trainable executor's own masks cover weights that arrive sparse).
// At the end each pruned weight is stored with a mask layout and exactly
// round(final * params) zeros.
class GradualPruner {
 public:
  // `total_steps` resolves end_step = -1 (three quarters of the run).
  static Expected<GradualPruner> create(compress::torch::TrainableModel& model, const PruneSchedule& schedule,
                                        int64_t total_steps);
  // Call before the forward pass of step `step` (0-based): prunes when the
  // schedule says so.
  Status prune_if_due(int64_t step);
  // Call between backward() and optimizer.step(): zeroes masked gradients.
  void mask_gradients();
  // Call after optimizer.step(): re-zeroes the masked weights (momentum and
  // weight decay would otherwise move them).
  void reapply_masks();
  // After write_back(): stores each pruned weight of `graph` with a mask layout.
  Status finish(ir::Graph& graph) const;

  int64_t events() const { return events_; }
  int64_t end_step() const { return end_; }
  double current_target() const { return target_; }

 private:
  struct Weight {
    std::string name;
    at::Tensor param;
    at::Tensor mask;  // f32 0/1, undefined until the first prune event
  };
  PruneSchedule schedule_;
  int64_t end_ = 0;
  int64_t events_ = 0;
  double target_ = 0.0;
  std::vector<Weight> weights_;
};

}  // namespace compress::distill
