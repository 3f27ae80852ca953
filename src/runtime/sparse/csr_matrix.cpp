// CsrMatrix construction from IR weights of any sparse layout, and the measured sparse/dense crossover.
#include <algorithm>
#include <array>
#include <limits>

#include "compress/ir/sparse_layout.h"
#include "compress/runtime/sparse_kernels.h"

namespace compress::runtime::sparse {

double CsrMatrix::sparsity() const {
  const double total = static_cast<double>(rows) * static_cast<double>(cols);
  return total <= 0 ? 0.0 : 1.0 - static_cast<double>(nnz()) / total;
}

size_t CsrMatrix::bytes() const {
  return row_ptr.size() * sizeof(int64_t) + col16.size() * sizeof(uint16_t) + col32.size() * sizeof(int32_t) +
         values.size() * sizeof(float);
}

Expected<CsrMatrix> csr_from_tensor(const ir::Tensor& weight) {
  COMPRESS_CHECK(weight.defined() && weight.dtype() == ir::DType::kF32 && weight.rank() >= 1 && !weight.is_quantized(),
                 StatusCode::kInvalidArgument, "sparse kernels take an unquantized f32 weight of rank >= 1");
  CsrMatrix m;
  ir::matrix_dims(weight.shape(), &m.rows, &m.cols);
  COMPRESS_CHECK(m.cols <= std::numeric_limits<int32_t>::max(), StatusCode::kInvalidArgument,
                 "sparse weight with {} columns (at most 2^31 - 1)", m.cols);
  const bool narrow = m.cols <= 65536;
  const auto& layout = weight.sparse_layout();
  if (weight.is_sparse() && layout->format == ir::SparseFormat::kCsr && layout->indices.size() == 2 &&
      layout->indices[0].dtype() == ir::DType::kI64 && layout->indices[1].dtype() == ir::DType::kI32) {
    // CSR already (validated when the tensor was made): copy, dropping stored zeros.
    const int64_t* row_ptr = layout->indices[0].data<int64_t>();
    const int32_t* col = layout->indices[1].data<int32_t>();
    const float* val = weight.stored_data<float>();
    m.row_ptr.assign(static_cast<size_t>(m.rows) + 1, 0);
    for (int64_t r = 0; r < m.rows; ++r) {
      for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
        if (val[p] == 0.0f) continue;
        m.values.push_back(val[p]);
        if (narrow) {
          m.col16.push_back(static_cast<uint16_t>(col[p]));
        } else {
          m.col32.push_back(col[p]);
        }
      }
      m.row_ptr[static_cast<size_t>(r) + 1] = m.nnz();
    }
    return m;
  }
  // Every other layout goes through its dense form: one conversion path
  // that the IR already tests, at compile time only.
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, weight.to_dense());
  const float* w = dense.data<float>();
  m.row_ptr.resize(static_cast<size_t>(m.rows) + 1, 0);
  int64_t nnz = 0;
  for (int64_t i = 0; i < m.rows * m.cols; ++i) nnz += w[i] != 0.0f ? 1 : 0;
  m.values.reserve(static_cast<size_t>(nnz));
  (narrow ? static_cast<void>(m.col16.reserve(static_cast<size_t>(nnz)))
          : static_cast<void>(m.col32.reserve(static_cast<size_t>(nnz))));
  for (int64_t r = 0; r < m.rows; ++r) {
    const float* row = w + r * m.cols;
    for (int64_t c = 0; c < m.cols; ++c) {
      if (row[c] == 0.0f) continue;
      m.values.push_back(row[c]);
      if (narrow) {
        m.col16.push_back(static_cast<uint16_t>(c));
      } else {
        m.col32.push_back(static_cast<int32_t>(c));
      }
    }
    m.row_ptr[static_cast<size_t>(r) + 1] = m.nnz();
  }
  return m;
}

double crossover_sparsity(Product product, int64_t batch) {
  // bench_sparse, 2026-11-27 (bench/RESULTS.md): the lowest sparsity of the
  // sweep (0.0, 0.1, ..., 0.9, 0.95) from which on the sparse kernel's best
  // time beat the dense primitive's best. See Note [Sparse crossover].
  if (product == Product::kPointwiseConv) return 0.70;
  if (product == Product::kIm2colConv) return 0.90;
  struct Point {
    int64_t batch;
    double sparsity;
  };
  static constexpr std::array<Point, 3> kLinear = {{{1, 0.70}, {16, 0.80}, {64, 0.90}}};
  if (batch <= kLinear.front().batch) return kLinear.front().sparsity;
  for (size_t i = 1; i < kLinear.size(); ++i) {
    if (batch <= kLinear[i].batch) {
      const Point a = kLinear[i - 1], b = kLinear[i];
      const double t = static_cast<double>(batch - a.batch) / static_cast<double>(b.batch - a.batch);
      return a.sparsity + t * (b.sparsity - a.sparsity);
    }
  }
  return kLinear.back().sparsity;
}

}  // namespace compress::runtime::sparse
