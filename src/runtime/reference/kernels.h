// Internal interface of the reference kernels: one function per op family, plus shared helpers.
#pragma once

#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/ir/quant_params.h"
#include "compress/ir/tensor.h"
#include "compress/support/check.h"
#include "compress/support/threads.h"

namespace compress::runtime::reference {

using ir::DType;
using ir::Shape;
using ir::Tensor;
using Tensors = std::vector<Tensor>;

// Note [Reference kernel conventions]
// - A kernel gets the node (attributes, op, static types) and the actual
//   input tensors; every shape is computed from the tensors. Inputs are dense
//   (the plan densifies sparse constants) and float inputs are f32 (the
//   dispatcher widens f16/bf16 and narrows the results again).
// - Errors are returned, never thrown or asserted; the dispatcher prefixes
//   them with the node's name and op, so kernels only say what and which shapes.
// - Storage is f32; sums, dot products and statistics are accumulated in
//   double and rounded to f32 once. Work is split over threads only along
//   independent outputs, so results do not depend on the thread count.
using KernelFn = Expected<Tensors> (*)(const ir::Node& node, const Tensors& inputs);

// parallel_for for work whose per-index results do not depend on the split;
// small n runs inline (starting threads would cost more than the work).
template <typename Fn>
void parallel_for_grain(int64_t n, int64_t grain, Fn&& fn) {
  if (n < grain) {
    if (n > 0) fn(0L, static_cast<long>(n));
    return;
  }
  parallel_for(static_cast<long>(n), std::forward<Fn>(fn));
}

// ---- helpers (kernels.cpp) ----------------------------------------------------
Status check_f32(const Tensor& t, const char* what);
Status check_rank(const Tensor& t, int64_t rank, const char* what);
Expected<int64_t> normalize_axis(int64_t axis, int64_t rank);
Expected<Shape> broadcast_shapes(const Shape& a, const Shape& b);
Shape row_major_strides(const Shape& shape);
// For each index of `out_batch` (row-major), the flat index into `in_batch`,
// which broadcasts to it (right-aligned, size-1 dims repeat).
std::vector<int64_t> broadcast_batch_offsets(const Shape& out_batch, const Shape& in_batch);
// Output size of a sliding window (conv and pooling), PyTorch's rule for ceil_mode.
Expected<int64_t> window_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad_lo, int64_t pad_hi,
                                     int64_t dilation, bool ceil_mode);
Expected<Tensor> new_tensor(DType dtype, Shape shape);
// Quant params of input i: the tensor's own, else its value type's (null if none).
const ir::QuantParams* input_quant(const ir::Node& node, const Tensors& inputs, size_t i);
// QuantParams from quantize/fake_quant attributes, fitted to an actual shape.
Expected<ir::QuantParams> quant_params_from_attrs(const ir::Node& node, const Shape& shape);
// Element i of an integer tensor of any integer dtype (i4/u4 unpacked).
int64_t integer_element(const Tensor& t, int64_t i);

// torch.matmul shapes: 1-D operands promoted (and the added dim dropped from
// the output), batch dims broadcast. Offsets are in matrices, per output batch.
struct MatmulGeometry {
  int64_t m = 0, k = 0, n = 0;
  Shape out_shape;
  std::vector<int64_t> a_offsets, b_offsets;
};
Expected<MatmulGeometry> matmul_geometry(const Shape& a, const Shape& b);

// ---- kernels, by family ----------------------------------------------------------
// conv.cpp
Expected<Tensors> conv2d(const ir::Node& node, const Tensors& in);
// matmul.cpp
Expected<Tensors> linear(const ir::Node& node, const Tensors& in);
Expected<Tensors> matmul(const ir::Node& node, const Tensors& in);
// quantized.cpp
Expected<Tensors> qconv2d(const ir::Node& node, const Tensors& in);
Expected<Tensors> qlinear(const ir::Node& node, const Tensors& in);
Expected<Tensors> qmatmul(const ir::Node& node, const Tensors& in);
Expected<Tensors> qadd(const ir::Node& node, const Tensors& in);  // Note [Quantized add]
Expected<Tensors> quantize(const ir::Node& node, const Tensors& in);
Expected<Tensors> dequantize(const ir::Node& node, const Tensors& in);
Expected<Tensors> fake_quant(const ir::Node& node, const Tensors& in);
// normalization.cpp
Expected<Tensors> batch_norm(const ir::Node& node, const Tensors& in);
Expected<Tensors> layer_norm(const ir::Node& node, const Tensors& in);
Expected<Tensors> rms_norm(const ir::Node& node, const Tensors& in);
Expected<Tensors> softmax(const ir::Node& node, const Tensors& in);
Expected<Tensors> reduce_mean(const ir::Node& node, const Tensors& in);
// elementwise.cpp
// The kernel of an elementwise op (activations, clamp, add/sub/mul/div); null for other ops.
KernelFn elementwise_kernel(ir::OpKind kind);
// pooling.cpp
Expected<Tensors> max_pool2d(const ir::Node& node, const Tensors& in);
Expected<Tensors> avg_pool2d(const ir::Node& node, const Tensors& in);
Expected<Tensors> adaptive_pool2d(const ir::Node& node, const Tensors& in);  // avg and max
// shape_ops.cpp (any dtype; quant params follow the node's output type)
Expected<Tensors> concat(const ir::Node& node, const Tensors& in);
Expected<Tensors> split(const ir::Node& node, const Tensors& in);
Expected<Tensors> slice(const ir::Node& node, const Tensors& in);
Expected<Tensors> reshape(const ir::Node& node, const Tensors& in);
Expected<Tensors> flatten(const ir::Node& node, const Tensors& in);
Expected<Tensors> transpose(const ir::Node& node, const Tensors& in);
Expected<Tensors> permute(const ir::Node& node, const Tensors& in);
// attention.cpp
Expected<Tensors> embedding(const ir::Node& node, const Tensors& in);
Expected<Tensors> attention(const ir::Node& node, const Tensors& in);

}  // namespace compress::runtime::reference
