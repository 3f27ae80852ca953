// Runs one IR node with ATen ops (autograd-friendly): the trainable executor's kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::torch {

struct TorchRunContext {
  bool training = false;
  double batch_norm_momentum = 0.1;
};

Expected<std::vector<at::Tensor>> run_torch_node(const ir::Node& node, const std::vector<at::Tensor>& inputs,
                                                 const TorchRunContext& context);

}  // namespace compress::torch
