// linear and matmul: Eigen GEMMs in double over blocks whose shapes do not depend on the thread count.
#include <Eigen/Core>
#include <algorithm>

#include "compress/support/threads.h"
#include "kernels.h"

namespace compress::runtime::reference {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;
using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Expected<MatmulGeometry> matmul_geometry(const Shape& a_in, const Shape& b_in) {
  COMPRESS_CHECK(!a_in.empty() && !b_in.empty(), kBad, "operands {} and {} must have rank >= 1",
                 ir::shape_to_string(a_in), ir::shape_to_string(b_in));
  Shape a = a_in, b = b_in;
  const bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), 1);
  if (b_vec) b.push_back(1);
  COMPRESS_CHECK(a.back() == b[b.size() - 2], kBad, "inner dims differ: {} x {}", ir::shape_to_string(a_in),
                 ir::shape_to_string(b_in));
  const Shape a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
  COMPRESS_ASSIGN_OR_RETURN(Shape batch, broadcast_shapes(a_batch, b_batch));
  MatmulGeometry g;
  g.m = a[a.size() - 2];
  g.k = a.back();
  g.n = b.back();
  g.out_shape = batch;
  if (!a_vec) g.out_shape.push_back(g.m);
  if (!b_vec) g.out_shape.push_back(g.n);
  g.a_offsets = broadcast_batch_offsets(batch, a_batch);
  g.b_offsets = broadcast_batch_offsets(batch, b_batch);
  return g;
}

Expected<Tensors> linear(const ir::Node&, const Tensors& in) {
  const Tensor& x = in[0];
  const Tensor& weight = in[1];
  const Tensor* bias = in.size() > 2 ? &in[2] : nullptr;
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  COMPRESS_RETURN_IF_ERROR(check_f32(weight, "weight"));
  COMPRESS_RETURN_IF_ERROR(check_rank(weight, 2, "weight"));
  COMPRESS_CHECK(x.rank() >= 1 && x.dim(-1) == weight.dim(1), kBad,
                 "input {} does not match weight {} (expects {} input features)", ir::shape_to_string(x.shape()),
                 ir::shape_to_string(weight.shape()), weight.dim(1));
  const int64_t out_features = weight.dim(0), in_features = weight.dim(1);
  if (bias != nullptr) {
    COMPRESS_RETURN_IF_ERROR(check_f32(*bias, "bias"));
    COMPRESS_CHECK(bias->shape() == Shape{out_features}, kBad, "bias shape {} must be [{}]",
                   ir::shape_to_string(bias->shape()), out_features);
  }
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, out_shape));
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.rank(); ++d) rows *= x.dim(d);
  const RowMajorD wt =
      Eigen::Map<const RowMajorF>(weight.data<float>(), out_features, in_features).cast<double>().transpose();
  const float* xd = x.data<float>();
  const float* bd = bias ? bias->data<float>() : nullptr;
  float* yd = out.data<float>();
  constexpr int64_t kRowBlock = 64;  // fixed, so every block's GEMM is the same whatever the thread count
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  parallel_for(static_cast<long>(blocks), [&](long begin, long end) {
    for (long blk = begin; blk < end; ++blk) {
      const int64_t r0 = blk * kRowBlock, nr = std::min(kRowBlock, rows - r0);
      const RowMajorD xb = Eigen::Map<const RowMajorF>(xd + r0 * in_features, nr, in_features).cast<double>();
      RowMajorD y = xb * wt;
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t o = 0; o < out_features; ++o) {
          yd[(r0 + r) * out_features + o] = static_cast<float>(y(r, o) + (bd ? static_cast<double>(bd[o]) : 0.0));
        }
      }
    }
  });
  return Tensors{std::move(out)};
}

Expected<Tensors> matmul(const ir::Node&, const Tensors& in) {
  COMPRESS_RETURN_IF_ERROR(check_f32(in[0], "input 0"));
  COMPRESS_RETURN_IF_ERROR(check_f32(in[1], "input 1"));
  COMPRESS_ASSIGN_OR_RETURN(MatmulGeometry g, matmul_geometry(in[0].shape(), in[1].shape()));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, g.out_shape));
  const float* ad = in[0].data<float>();
  const float* bd = in[1].data<float>();
  float* yd = out.data<float>();
  parallel_for(static_cast<long>(g.a_offsets.size()), [&](long begin, long end) {
    for (long t = begin; t < end; ++t) {
      const RowMajorD a = Eigen::Map<const RowMajorF>(ad + g.a_offsets[t] * g.m * g.k, g.m, g.k).cast<double>();
      const RowMajorD b = Eigen::Map<const RowMajorF>(bd + g.b_offsets[t] * g.k * g.n, g.k, g.n).cast<double>();
      Eigen::Map<RowMajorF>(yd + t * g.m * g.n, g.m, g.n) = (a * b).cast<float>();
    }
  });
  return Tensors{std::move(out)};
}

}  // namespace compress::runtime::reference
