// SparseLayout: how a pruned weight's values are stored (mask, CSR, N:M, block).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/ir/tensor.h"

namespace compress::ir {

// The numeric values are part of the .cmf format.
enum class SparseFormat : uint8_t { kDense = 0, kMask = 1, kCsr = 2, kNM = 3, kBlock = 4 };
std::string_view sparse_format_name(SparseFormat format);

// Note [Sparse layouts]
// A weight of logical shape [rows, d1, d2, ...] is viewed as a matrix
// [rows, cols] with cols = d1*d2*... (conv filters flatten to one row each).
//  - mask:  values are dense (logical shape); indices = {mask: bool, logical shape}.
//  - csr:   values [nnz] in row-major order; indices = {row_ptr: i64 [rows+1],
//           col_idx: i32 [nnz]}, col_idx strictly increasing within a row.
//  - nm:    n of every m consecutive columns kept (cols % m == 0); values
//           [rows * cols/m * n]; indices = {positions: u8 [same count]}, the
//           position within its group, strictly increasing within a group.
//  - block: nonzero blocks of block_h x block_w (rows % bh == 0, cols % bw == 0);
//           values [nblocks * bh * bw], each block row-major; indices =
//           {row_ptr: i64 [rows/bh + 1], col_idx: i32 [nblocks]} in block units.
struct SparseLayout {
  SparseFormat format = SparseFormat::kDense;
  int64_t n = 0, m = 0;              // N:M
  int64_t block_h = 0, block_w = 0;  // block
  std::vector<Tensor> indices;

  // Validates the layout against a logical shape and a stored value count:
  // index dtypes and lengths, ranges, ordering. Used by the .cmf reader on
  // untrusted data, so it checks everything and never reads out of bounds.
  Status validate(const Shape& logical_shape, int64_t stored_count) const;
  // Number of stored values the layout implies (nnz), after validate().
  int64_t stored_values() const;
  std::string to_string() const;
};

// Matrix view used by the layouts: rows = shape[0], cols = the rest.
void matrix_dims(const Shape& shape, int64_t* rows, int64_t* cols);

// Conversions from a dense tensor. Zeros are not stored (CSR/block/mask);
// N:M keeps the n largest-magnitude entries of each group of m.
Expected<Tensor> to_mask_layout(const Tensor& dense);
Expected<Tensor> to_csr_layout(const Tensor& dense);
Expected<Tensor> to_nm_layout(const Tensor& dense, int64_t n, int64_t m);
Expected<Tensor> to_block_layout(const Tensor& dense, int64_t block_h, int64_t block_w);

// Note [Writing back a weight]
// A pass that rewrites a weight (folds a batch norm into it, rescales its
// channels, slices channels away) computes on dense values and stores the
// result the way the original was stored, so that a pruned model stays
// pruned: `dense` in the format (and n:m / block size) of `like`, or `dense`
// itself when `like` is dense. Zeros are not stored (mask, csr, block). When
// `dense` no longer fits the layout (an n:m group with more than n nonzeros,
// a shape the blocks do not tile), it is stored as csr, which holds any
// pattern, and *fallback_reason (when given) says why; no value is lost.
Expected<Tensor> store_like(const Tensor& dense, const Tensor& like, std::string* fallback_reason = nullptr);

}  // namespace compress::ir
