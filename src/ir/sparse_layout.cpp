#include "compress/ir/sparse_layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "compress/support/check.h"

namespace compress::ir {
namespace {
constexpr StatusCode kBad = StatusCode::kInvalidArgument;

Status check_index_tensor(const SparseLayout& l, size_t i, DType dtype, int64_t count, const char* what) {
  COMPRESS_CHECK(i < l.indices.size() && l.indices[i].defined(), kBad, "{} layout: missing index tensor '{}'",
                 sparse_format_name(l.format), what);
  const Tensor& t = l.indices[i];
  COMPRESS_CHECK(t.dtype() == dtype && !t.is_sparse() && !t.is_quantized(), kBad,
                 "{} layout: index tensor '{}' must be dense {}, got {}", sparse_format_name(l.format), what,
                 dtype_name(dtype), dtype_name(t.dtype()));
  COMPRESS_CHECK(t.numel() == count, kBad, "{} layout: index tensor '{}' has {} entries, expected {}",
                 sparse_format_name(l.format), what, t.numel(), count);
  return Status::ok();
}

// row_ptr: starts at 0, non-decreasing, ends at `total`; col: strictly
// increasing within each row and < cols.
Status check_compressed_rows(const SparseLayout& l, int64_t rows, int64_t cols, const char* unit) {
  const Tensor& row_ptr_t = l.indices[0];
  COMPRESS_CHECK(row_ptr_t.numel() == rows + 1, kBad, "{} layout: row_ptr has {} entries, expected {}",
                 sparse_format_name(l.format), row_ptr_t.numel(), rows + 1);
  const int64_t* row_ptr = row_ptr_t.data<int64_t>();
  const int64_t total = l.indices.size() > 1 ? l.indices[1].numel() : 0;
  COMPRESS_CHECK(row_ptr[0] == 0, kBad, "{} layout: row_ptr[0] = {}, must be 0", sparse_format_name(l.format),
                 row_ptr[0]);
  for (int64_t r = 0; r < rows; ++r) {
    COMPRESS_CHECK(row_ptr[r + 1] >= row_ptr[r] && row_ptr[r + 1] <= total, kBad,
                   "{} layout: row_ptr[{}] = {} is not in [{}, {}]", sparse_format_name(l.format), r + 1,
                   row_ptr[r + 1], row_ptr[r], total);
  }
  COMPRESS_CHECK(row_ptr[rows] == total, kBad, "{} layout: row_ptr ends at {} but there are {} {}",
                 sparse_format_name(l.format), row_ptr[rows], total, unit);
  const int32_t* col = l.indices[1].data<int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = row_ptr[r]; k < row_ptr[r + 1]; ++k) {
      COMPRESS_CHECK(col[k] >= 0 && col[k] < cols, kBad, "{} layout: column index {} (row {}) out of range [0, {})",
                     sparse_format_name(l.format), col[k], r, cols);
      COMPRESS_CHECK(k == row_ptr[r] || col[k] > col[k - 1], kBad,
                     "{} layout: column indices of row {} are not strictly increasing ({} after {})",
                     sparse_format_name(l.format), r, col[k], col[k - 1]);
    }
  }
  return Status::ok();
}

}  // namespace

std::string_view sparse_format_name(SparseFormat format) {
  switch (format) {
    case SparseFormat::kDense: return "dense";
    case SparseFormat::kMask: return "mask";
    case SparseFormat::kCsr: return "csr";
    case SparseFormat::kNM: return "nm";
    case SparseFormat::kBlock: return "block";
  }
  return "?";
}

void matrix_dims(const Shape& shape, int64_t* rows, int64_t* cols) {
  if (shape.empty()) {
    *rows = 1;
    *cols = 1;
    return;
  }
  *rows = shape[0];
  *cols = 1;
  for (size_t i = 1; i < shape.size(); ++i) *cols *= shape[i];
}

Status SparseLayout::validate(const Shape& shape, int64_t stored_count) const {
  const auto count = checked_numel(shape);
  COMPRESS_CHECK(count.has_value(), kBad, "sparse layout: invalid logical shape {}", shape_to_string(shape));
  int64_t rows = 0, cols = 0;
  matrix_dims(shape, &rows, &cols);
  switch (format) {
    case SparseFormat::kDense:
      COMPRESS_CHECK(indices.empty(), kBad, "dense layout carries {} index tensors", indices.size());
      break;
    case SparseFormat::kMask:
      COMPRESS_CHECK(indices.size() == 1, kBad, "mask layout needs 1 index tensor, got {}", indices.size());
      COMPRESS_RETURN_IF_ERROR(check_index_tensor(*this, 0, DType::kBool, *count, "mask"));
      break;
    case SparseFormat::kCsr:
      COMPRESS_CHECK(indices.size() == 2, kBad, "csr layout needs 2 index tensors, got {}", indices.size());
      COMPRESS_CHECK(cols <= INT32_MAX, kBad, "csr layout: {} columns exceed the i32 index range", cols);
      COMPRESS_RETURN_IF_ERROR(check_index_tensor(*this, 0, DType::kI64, rows + 1, "row_ptr"));
      COMPRESS_RETURN_IF_ERROR(check_index_tensor(*this, 1, DType::kI32, indices[1].numel(), "col_idx"));
      COMPRESS_RETURN_IF_ERROR(check_compressed_rows(*this, rows, cols, "values"));
      break;
    case SparseFormat::kNM: {
      COMPRESS_CHECK(indices.size() == 1, kBad, "nm layout needs 1 index tensor, got {}", indices.size());
      COMPRESS_CHECK(m >= 1 && m <= 255 && n >= 1 && n <= m, kBad, "nm layout: invalid pattern {}:{}", n, m);
      COMPRESS_CHECK(cols % m == 0, kBad, "nm layout: {} columns are not a multiple of m={}", cols, m);
      const int64_t kept = rows * (cols / m) * n;
      COMPRESS_RETURN_IF_ERROR(check_index_tensor(*this, 0, DType::kU8, kept, "positions"));
      const uint8_t* pos = indices[0].data<uint8_t>();
      for (int64_t k = 0; k < kept; ++k) {
        COMPRESS_CHECK(pos[k] < m, kBad, "nm layout: position {} at entry {} is not < m={}", pos[k], k, m);
        COMPRESS_CHECK(k % n == 0 || pos[k] > pos[k - 1], kBad,
                       "nm layout: positions in group {} are not strictly increasing", k / n);
      }
      break;
    }
    case SparseFormat::kBlock: {
      COMPRESS_CHECK(indices.size() == 2, kBad, "block layout needs 2 index tensors, got {}", indices.size());
      COMPRESS_CHECK(block_h >= 1 && block_w >= 1 && rows % block_h == 0 && cols % block_w == 0, kBad,
                     "block layout: block {}x{} does not tile the {}x{} matrix", block_h, block_w, rows, cols);
      COMPRESS_RETURN_IF_ERROR(check_index_tensor(*this, 0, DType::kI64, rows / block_h + 1, "row_ptr"));
      COMPRESS_RETURN_IF_ERROR(check_index_tensor(*this, 1, DType::kI32, indices[1].numel(), "col_idx"));
      COMPRESS_RETURN_IF_ERROR(check_compressed_rows(*this, rows / block_h, cols / block_w, "blocks"));
      break;
    }
    default:
      return invalid_argument("unknown sparse format {}", static_cast<int>(format));
  }
  if (stored_count >= 0) {
    COMPRESS_CHECK(stored_values() == stored_count, kBad, "{} layout implies {} stored values, tensor has {}",
                   sparse_format_name(format), stored_values(), stored_count);
  }
  return Status::ok();
}

int64_t SparseLayout::stored_values() const {
  switch (format) {
    case SparseFormat::kDense: return -1;
    case SparseFormat::kMask: return indices[0].numel();
    case SparseFormat::kCsr: return indices[1].numel();
    case SparseFormat::kNM: return indices[0].numel();
    case SparseFormat::kBlock: return indices[1].numel() * block_h * block_w;
  }
  return -1;
}

std::string SparseLayout::to_string() const {
  switch (format) {
    case SparseFormat::kDense: return "dense";
    case SparseFormat::kMask: return "mask";
    case SparseFormat::kCsr: return fmt::format("csr nnz={}", stored_values());
    case SparseFormat::kNM: return fmt::format("nm {}:{}", n, m);
    case SparseFormat::kBlock: return fmt::format("block {}x{} blocks={}", block_h, block_w, indices[1].numel());
  }
  return "?";
}

// ---- conversions from dense ------------------------------------------------------

namespace {

Status require_convertible(const Tensor& dense) {
  COMPRESS_CHECK(dense.defined() && !dense.is_sparse(), kBad, "sparse conversion needs a dense tensor");
  COMPRESS_CHECK(!is_packed(dense.dtype()), kBad, "sparse conversion of packed {} tensors is not supported",
                 dtype_name(dense.dtype()));
  return Status::ok();
}

size_t element_size(const Tensor& t) { return static_cast<size_t>(dtype_bits(t.dtype()) / 8); }

// "Zero" in the stored domain: the zero point for quantized tensors.
bool is_zero_at(const Tensor& t, int64_t i) {
  const double zero = t.quant() ? t.quant()->zero_points()[static_cast<size_t>(t.quant()->param_index(t.shape(), i))] : 0.0;
  return t.element_as_double(i) == zero;
}

Expected<Tensor> gather_values(const Tensor& dense, const std::vector<int64_t>& picks,
                               std::shared_ptr<const SparseLayout> layout) {
  const size_t size = element_size(dense);
  COMPRESS_ASSIGN_OR_RETURN(auto storage, Storage::allocate(picks.size() * size));
  char* out = static_cast<char*>(storage->data());
  const char* in = static_cast<const char*>(dense.raw_data());
  for (size_t k = 0; k < picks.size(); ++k) std::memcpy(out + k * size, in + picks[k] * size, size);
  return Tensor::from_storage(dense.dtype(), dense.shape(), std::move(storage), dense.quant(), std::move(layout));
}

}  // namespace

Expected<Tensor> to_mask_layout(const Tensor& dense) {
  COMPRESS_RETURN_IF_ERROR(require_convertible(dense));
  COMPRESS_ASSIGN_OR_RETURN(Tensor mask, Tensor::zeros(DType::kBool, dense.shape()));
  for (int64_t i = 0; i < dense.numel(); ++i) mask.data<uint8_t>()[i] = is_zero_at(dense, i) ? 0 : 1;
  auto layout = std::make_shared<SparseLayout>();
  layout->format = SparseFormat::kMask;
  layout->indices = {mask};
  COMPRESS_ASSIGN_OR_RETURN(Tensor values, dense.clone());
  return Tensor::from_storage(dense.dtype(), dense.shape(), values.storage(), dense.quant(), std::move(layout));
}

Expected<Tensor> to_csr_layout(const Tensor& dense) {
  COMPRESS_RETURN_IF_ERROR(require_convertible(dense));
  int64_t rows = 0, cols = 0;
  matrix_dims(dense.shape(), &rows, &cols);
  COMPRESS_CHECK(cols <= INT32_MAX, kBad, "csr: {} columns exceed the i32 index range", cols);
  std::vector<int64_t> row_ptr(static_cast<size_t>(rows + 1), 0);
  std::vector<int32_t> col_idx;
  std::vector<int64_t> picks;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (!is_zero_at(dense, r * cols + c)) {
        col_idx.push_back(static_cast<int32_t>(c));
        picks.push_back(r * cols + c);
      }
    }
    row_ptr[static_cast<size_t>(r + 1)] = static_cast<int64_t>(col_idx.size());
  }
  auto layout = std::make_shared<SparseLayout>();
  layout->format = SparseFormat::kCsr;
  layout->indices = {Tensor::from_vector(DType::kI64, {rows + 1}, row_ptr),
                     Tensor::from_vector(DType::kI32, {static_cast<int64_t>(col_idx.size())}, col_idx)};
  return gather_values(dense, picks, std::move(layout));
}

Expected<Tensor> to_nm_layout(const Tensor& dense, int64_t n, int64_t m) {
  COMPRESS_RETURN_IF_ERROR(require_convertible(dense));
  int64_t rows = 0, cols = 0;
  matrix_dims(dense.shape(), &rows, &cols);
  COMPRESS_CHECK(m >= 1 && m <= 255 && n >= 1 && n <= m, kBad, "nm: invalid pattern {}:{}", n, m);
  COMPRESS_CHECK(cols % m == 0, kBad, "nm: {} columns are not a multiple of m={}", cols, m);
  std::vector<uint8_t> positions;
  std::vector<int64_t> picks;
  std::vector<int64_t> order(static_cast<size_t>(m));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < cols / m; ++g) {
      const int64_t base = r * cols + g * m;
      std::iota(order.begin(), order.end(), 0);
      // Largest magnitude first; ties keep the lower position (stable).
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return std::fabs(dense.element_as_double(base + a)) > std::fabs(dense.element_as_double(base + b));
      });
      std::vector<int64_t> kept(order.begin(), order.begin() + n);
      std::sort(kept.begin(), kept.end());
      for (int64_t p : kept) {
        positions.push_back(static_cast<uint8_t>(p));
        picks.push_back(base + p);
      }
    }
  }
  auto layout = std::make_shared<SparseLayout>();
  layout->format = SparseFormat::kNM;
  layout->n = n;
  layout->m = m;
  layout->indices = {Tensor::from_vector(DType::kU8, {static_cast<int64_t>(positions.size())}, positions)};
  return gather_values(dense, picks, std::move(layout));
}

Expected<Tensor> to_block_layout(const Tensor& dense, int64_t bh, int64_t bw) {
  COMPRESS_RETURN_IF_ERROR(require_convertible(dense));
  int64_t rows = 0, cols = 0;
  matrix_dims(dense.shape(), &rows, &cols);
  COMPRESS_CHECK(bh >= 1 && bw >= 1 && rows % bh == 0 && cols % bw == 0, kBad,
                 "block: {}x{} blocks do not tile the {}x{} matrix", bh, bw, rows, cols);
  std::vector<int64_t> row_ptr(static_cast<size_t>(rows / bh + 1), 0);
  std::vector<int32_t> col_idx;
  std::vector<int64_t> picks;
  for (int64_t br = 0; br < rows / bh; ++br) {
    for (int64_t bc = 0; bc < cols / bw; ++bc) {
      bool nonzero = false;
      for (int64_t i = 0; i < bh && !nonzero; ++i) {
        for (int64_t j = 0; j < bw && !nonzero; ++j) nonzero = !is_zero_at(dense, (br * bh + i) * cols + bc * bw + j);
      }
      if (!nonzero) continue;
      col_idx.push_back(static_cast<int32_t>(bc));
      for (int64_t i = 0; i < bh; ++i) {
        for (int64_t j = 0; j < bw; ++j) picks.push_back((br * bh + i) * cols + bc * bw + j);
      }
    }
    row_ptr[static_cast<size_t>(br + 1)] = static_cast<int64_t>(col_idx.size());
  }
  auto layout = std::make_shared<SparseLayout>();
  layout->format = SparseFormat::kBlock;
  layout->block_h = bh;
  layout->block_w = bw;
  layout->indices = {Tensor::from_vector(DType::kI64, {rows / bh + 1}, row_ptr),
                     Tensor::from_vector(DType::kI32, {static_cast<int64_t>(col_idx.size())}, col_idx)};
  return gather_values(dense, picks, std::move(layout));
}

namespace {

// Whether every group of m consecutive columns has at most n nonzeros (so an
// n:m layout keeps all of them).
bool fits_nm(const Tensor& dense, int64_t n, int64_t m) {
  int64_t rows = 0, cols = 0;
  matrix_dims(dense.shape(), &rows, &cols);
  if (m < 1 || cols % m != 0) return false;
  for (int64_t g = 0; g < rows * cols / m; ++g) {
    int64_t nonzero = 0;
    for (int64_t j = 0; j < m; ++j) nonzero += is_zero_at(dense, g * m + j) ? 0 : 1;
    if (nonzero > n) return false;
  }
  return true;
}

bool fits_blocks(const Tensor& dense, int64_t bh, int64_t bw) {
  int64_t rows = 0, cols = 0;
  matrix_dims(dense.shape(), &rows, &cols);
  return bh >= 1 && bw >= 1 && rows % bh == 0 && cols % bw == 0;
}

}  // namespace

Expected<Tensor> store_like(const Tensor& dense, const Tensor& like, std::string* fallback_reason) {
  COMPRESS_RETURN_IF_ERROR(require_convertible(dense));
  if (!like.is_sparse()) return dense;
  const SparseLayout& layout = *like.sparse_layout();
  auto fallback = [&](std::string why) -> Expected<Tensor> {
    if (fallback_reason != nullptr) *fallback_reason = std::move(why);
    return to_csr_layout(dense);
  };
  switch (layout.format) {
    case SparseFormat::kDense: return dense;
    case SparseFormat::kMask: return to_mask_layout(dense);
    case SparseFormat::kCsr: return to_csr_layout(dense);
    case SparseFormat::kNM:
      if (!fits_nm(dense, layout.n, layout.m)) {
        return fallback(fmt::format("the values no longer fit {}:{} (a group of {} has more than {} nonzeros, or "
                                    "the columns are not a multiple of {})",
                                    layout.n, layout.m, layout.m, layout.n, layout.m));
      }
      return to_nm_layout(dense, layout.n, layout.m);
    case SparseFormat::kBlock:
      if (!fits_blocks(dense, layout.block_h, layout.block_w)) {
        return fallback(fmt::format("{}x{} blocks no longer tile shape {}", layout.block_h, layout.block_w,
                                    shape_to_string(dense.shape())));
      }
      return to_block_layout(dense, layout.block_h, layout.block_w);
  }
  return dense;
}

}  // namespace compress::ir
