// The onednn plan's step for linear / conv2d groups whose constant weight has a sparse layout.
#pragma once

#include <string>

#include "builder.h"

namespace compress::runtime::onednn {

// Note [Sparse weight steps]
// A linear or conv2d (groups 1) whose f32 weight is stored with a sparse
// layout runs through the sparse kernels (compress/runtime/sparse_kernels.h)
// when its sparsity is at least the measured crossover for the number of
// output columns of this shape (the batch for a linear, batch * out_h * out_w
// for a convolution); bias, eltwise posts and a fused residual add are applied
// as each output is stored. Otherwise the weight is densified once (shared by
// every shape's plan through the weight cache) and the dense primitive runs.
// Returns true when the sparse step was emitted; false changes nothing and
// sets `why_dense` (for the dense step's detail in the plan report) when
// the weight is sparse.
Expected<bool> emit_sparse_weight_step(Builder& b, const Group& g, std::string* why_dense);

// The dense f32 bytes of a constant weight: its own storage, or for a sparse
// layout a densified copy cached with the weights.
Expected<const void*> dense_weight_data(Builder& b, const ir::Value* v);

}  // namespace compress::runtime::onednn
