// embedding (range-checked lookup) and scaled dot-product attention in double.
#include <Eigen/Core>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels.h"

namespace compress::runtime::reference {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;

Expected<Tensors> embedding(const ir::Node&, const Tensors& in) {
  const Tensor& indices = in[0];
  const Tensor& weight = in[1];
  COMPRESS_CHECK(indices.dtype() == DType::kI64 || indices.dtype() == DType::kI32, kBad,
                 "indices must be i64 or i32, got {}", ir::dtype_name(indices.dtype()));
  COMPRESS_RETURN_IF_ERROR(check_f32(weight, "weight"));
  COMPRESS_RETURN_IF_ERROR(check_rank(weight, 2, "weight"));
  const int64_t rows = weight.dim(0), width = weight.dim(1);
  Shape out_shape = indices.shape();
  out_shape.push_back(width);
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, out_shape));
  const float* table = weight.data<float>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < indices.numel(); ++i) {
    const int64_t row = integer_element(indices, i);
    // Indices are data: a bad one is the caller's error, never an out-of-bounds read.
    COMPRESS_CHECK(row >= 0 && row < rows, kBad,
                   "index {} at position {} of indices {} is out of range for a table of {} rows (weight {})", row, i,
                   ir::shape_to_string(indices.shape()), rows, ir::shape_to_string(weight.shape()));
    if (width > 0) std::memcpy(dst + i * width, table + row * width, static_cast<size_t>(width) * sizeof(float));
  }
  return Tensors{std::move(out)};
}

Expected<Tensors> attention(const ir::Node& node, const Tensors& in) {
  using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Tensor& q = in[0];
  const Tensor& k = in[1];
  const Tensor& v = in[2];
  const Tensor* mask = in.size() > 3 ? &in[3] : nullptr;
  const char* names[] = {"query", "key", "value"};
  for (int i = 0; i < 3; ++i) {
    COMPRESS_RETURN_IF_ERROR(check_f32(in[i], names[i]));
    COMPRESS_CHECK(in[i].rank() >= 2, kBad, "{} must have rank >= 2, got {}", names[i],
                   ir::shape_to_string(in[i].shape()));
  }
  const int64_t l = q.dim(-2), e = q.dim(-1), s = k.dim(-2), ev = v.dim(-1);
  COMPRESS_CHECK(k.dim(-1) == e && v.dim(-2) == s, kBad,
                 "query {}, key {} and value {} do not fit [..., L, E], [..., S, E], [..., S, Ev]",
                 ir::shape_to_string(q.shape()), ir::shape_to_string(k.shape()), ir::shape_to_string(v.shape()));
  const Shape qb(q.shape().begin(), q.shape().end() - 2), kb(k.shape().begin(), k.shape().end() - 2),
      vb(v.shape().begin(), v.shape().end() - 2);
  COMPRESS_ASSIGN_OR_RETURN(Shape batch, broadcast_shapes(qb, kb));
  COMPRESS_ASSIGN_OR_RETURN(batch, broadcast_shapes(batch, vb));
  Shape scores_shape = batch;
  scores_shape.push_back(l);
  scores_shape.push_back(s);
  std::vector<int64_t> mask_at;  // mask element of each score element
  if (mask != nullptr) {
    COMPRESS_CHECK(mask->dtype() == DType::kBool || mask->dtype() == DType::kF32, kBad,
                   "mask must be bool or float, got {}", ir::dtype_name(mask->dtype()));
    auto fits = broadcast_shapes(scores_shape, mask->shape());
    COMPRESS_CHECK(fits.has_value() && *fits == scores_shape, kBad, "mask {} does not broadcast to scores {}",
                   ir::shape_to_string(mask->shape()), ir::shape_to_string(scores_shape));
    mask_at = broadcast_batch_offsets(scores_shape, mask->shape());
  }
  const bool causal = node.attr_int("is_causal") != 0;
  const double scale_attr = node.attr_float("scale");
  const double scale = scale_attr == 0.0 ? 1.0 / std::sqrt(static_cast<double>(e)) : scale_attr;

  Shape out_shape = batch;
  out_shape.push_back(l);
  out_shape.push_back(ev);
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, out_shape));
  const std::vector<int64_t> qo = broadcast_batch_offsets(batch, qb), ko = broadcast_batch_offsets(batch, kb),
                             vo = broadcast_batch_offsets(batch, vb);
  const double neg_inf = -std::numeric_limits<double>::infinity();
  parallel_for_grain(static_cast<int64_t>(qo.size()), 2, [&](long begin, long end) {
    for (long t = begin; t < end; ++t) {
      const RowMajorD qm = Eigen::Map<const RowMajorF>(q.data<float>() + qo[t] * l * e, l, e).cast<double>();
      const RowMajorD km = Eigen::Map<const RowMajorF>(k.data<float>() + ko[t] * s * e, s, e).cast<double>();
      const RowMajorD vm = Eigen::Map<const RowMajorF>(v.data<float>() + vo[t] * s * ev, s, ev).cast<double>();
      RowMajorD scores = (qm * km.transpose()) * scale;
      for (int64_t i = 0; i < l; ++i) {
        for (int64_t j = 0; j < s; ++j) {
          double& x = scores(i, j);
          if (causal && j > i) x = neg_inf;
          if (mask != nullptr) {
            const int64_t at = mask_at[(t * l + i) * s + j];
            if (mask->dtype() == DType::kBool) {
              if (mask->data<uint8_t>()[at] == 0) x = neg_inf;
            } else {
              x += mask->data<float>()[at];
            }
          }
        }
        // Stable softmax; a fully masked row gives NaN, as in PyTorch.
        double m = neg_inf;
        for (int64_t j = 0; j < s; ++j) m = std::max(m, scores(i, j));
        double sum = 0.0;
        for (int64_t j = 0; j < s; ++j) {
          scores(i, j) = std::exp(scores(i, j) - m);
          sum += scores(i, j);
        }
        for (int64_t j = 0; j < s; ++j) scores(i, j) /= sum;
      }
      Eigen::Map<RowMajorF>(out.data<float>() + t * l * ev, l, ev) = (scores * vm).cast<float>();
    }
  });
  return Tensors{std::move(out)};
}

}  // namespace compress::runtime::reference
