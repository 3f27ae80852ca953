#include "compress/ir/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "compress/ir/sparse_layout.h"
#include "compress/support/check.h"

namespace compress::ir {

std::optional<int64_t> checked_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > INT64_MAX / d) return std::nullopt;
    n *= d;
  }
  return n;
}

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// ---- Storage ------------------------------------------------------------------

Expected<std::shared_ptr<Storage>> Storage::allocate(size_t nbytes) {
  // aligned_alloc needs a size that is a multiple of the alignment; a zero-byte
  // tensor still gets a valid pointer so data() is never null for a defined tensor.
  const size_t rounded = ((nbytes + kTensorAlignment - 1) / kTensorAlignment) * kTensorAlignment;
  if (rounded < nbytes) return invalid_argument("tensor of {} bytes is too large", nbytes);
  void* p = std::aligned_alloc(kTensorAlignment, rounded == 0 ? kTensorAlignment : rounded);
  if (p == nullptr) return make_error(StatusCode::kIoError, "out of memory allocating {} bytes for a tensor", nbytes);
  std::memset(p, 0, rounded == 0 ? kTensorAlignment : rounded);
  return std::shared_ptr<Storage>(new Storage(p, nbytes, nullptr));
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t nbytes, std::shared_ptr<void> keep_alive) {
  if (!keep_alive) keep_alive = std::shared_ptr<void>(static_cast<void*>(nullptr), [](void*) {});
  return std::shared_ptr<Storage>(new Storage(data, nbytes, std::move(keep_alive)));
}

Storage::~Storage() {
  if (!keep_alive_) std::free(data_);
}

// ---- Tensor -------------------------------------------------------------------

Expected<Tensor> Tensor::zeros(DType dtype, Shape shape) {
  COMPRESS_CHECK(static_cast<int>(shape.size()) <= kMaxRank, StatusCode::kInvalidArgument,
                 "tensor rank {} exceeds the maximum {}", shape.size(), kMaxRank);
  const auto count = checked_numel(shape);
  COMPRESS_CHECK(count.has_value(), StatusCode::kInvalidArgument, "invalid tensor shape {}", shape_to_string(shape));
  const auto bytes = storage_bytes(dtype, static_cast<uint64_t>(*count));
  COMPRESS_CHECK(bytes.has_value() && *bytes <= SIZE_MAX, StatusCode::kInvalidArgument,
                 "tensor shape {} of {} is too large", shape_to_string(shape), dtype_name(dtype));
  COMPRESS_ASSIGN_OR_RETURN(auto storage, Storage::allocate(static_cast<size_t>(*bytes)));
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = std::move(storage);
  return t;
}

Tensor Tensor::scalar_f32(float value) {
  Tensor t = zeros(DType::kF32, {}).value();
  *t.data<float>() = value;
  return t;
}

Expected<Tensor> Tensor::from_storage(DType dtype, Shape shape, std::shared_ptr<Storage> storage,
                                      std::shared_ptr<const QuantParams> quant,
                                      std::shared_ptr<const SparseLayout> sparse) {
  COMPRESS_CHECK(storage != nullptr, StatusCode::kInvalidArgument, "tensor without storage");
  COMPRESS_CHECK(static_cast<int>(shape.size()) <= kMaxRank, StatusCode::kInvalidArgument,
                 "tensor rank {} exceeds the maximum {}", shape.size(), kMaxRank);
  const auto count = checked_numel(shape);
  COMPRESS_CHECK(count.has_value(), StatusCode::kInvalidArgument, "invalid tensor shape {}", shape_to_string(shape));
  int64_t stored = *count;
  if (sparse && sparse->format != SparseFormat::kDense) {
    COMPRESS_RETURN_IF_ERROR(sparse->validate(shape, -1));
    stored = sparse->stored_values();
  }
  const auto bytes = storage_bytes(dtype, static_cast<uint64_t>(stored));
  COMPRESS_CHECK(bytes.has_value() && *bytes == storage->nbytes(), StatusCode::kInvalidArgument,
                 "tensor {} of {}: storage holds {} bytes, {} stored values need {}", shape_to_string(shape),
                 dtype_name(dtype), storage->nbytes(), stored, bytes.value_or(0));
  if (quant) COMPRESS_RETURN_IF_ERROR(quant->check_shape(shape));
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = std::move(storage);
  t.quant_ = std::move(quant);
  if (sparse && sparse->format != SparseFormat::kDense) t.sparse_ = std::move(sparse);
  return t;
}

int64_t Tensor::numel() const { return ir::numel(shape_); }

bool Tensor::is_sparse() const { return sparse_ != nullptr && sparse_->format != SparseFormat::kDense; }

int64_t Tensor::stored_count() const { return is_sparse() ? sparse_->stored_values() : numel(); }

size_t Tensor::nbytes() const { return storage_ ? storage_->nbytes() : 0; }

Tensor Tensor::with_quant(std::shared_ptr<const QuantParams> quant) const {
  Tensor t = *this;
  t.quant_ = std::move(quant);
  return t;
}

Expected<Tensor> Tensor::reshaped(Shape shape) const {
  COMPRESS_CHECK(!is_sparse(), StatusCode::kInvalidArgument, "cannot reshape a sparse tensor");
  const auto count = checked_numel(shape);
  COMPRESS_CHECK(count.has_value() && *count == numel(), StatusCode::kInvalidArgument,
                 "cannot reshape {} into {}", shape_to_string(shape_), shape_to_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  if (t.quant_) COMPRESS_RETURN_IF_ERROR(t.quant_->check_shape(t.shape_));
  return t;
}

Expected<Tensor> Tensor::clone() const {
  COMPRESS_CHECK(defined(), StatusCode::kInvalidArgument, "clone of an undefined tensor");
  COMPRESS_ASSIGN_OR_RETURN(auto storage, Storage::allocate(nbytes()));
  if (nbytes() > 0) std::memcpy(storage->data(), raw_data(), nbytes());
  Tensor t = *this;
  t.storage_ = std::move(storage);
  return t;
}

int get_packed4(const uint8_t* data, int64_t i, bool is_signed) {
  const uint8_t byte = data[i / 2];
  int nibble = (i % 2 == 0) ? (byte & 0x0f) : (byte >> 4);
  if (is_signed && nibble >= 8) nibble -= 16;
  return nibble;
}

void set_packed4(uint8_t* data, int64_t i, int value) {
  uint8_t& byte = data[i / 2];
  const uint8_t nibble = static_cast<uint8_t>(value) & 0x0f;
  byte = (i % 2 == 0) ? static_cast<uint8_t>((byte & 0xf0) | nibble) : static_cast<uint8_t>((byte & 0x0f) | (nibble << 4));
}

namespace {

// Reads stored value i of a buffer as double (any dtype).
double stored_as_double(DType dtype, const void* data, int64_t i) {
  switch (dtype) {
    case DType::kF32: return static_cast<const float*>(data)[i];
    case DType::kF16: return half_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::kBF16: return bf16_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::kI8: return static_cast<const int8_t*>(data)[i];
    case DType::kU8: return static_cast<const uint8_t*>(data)[i];
    case DType::kI4: return get_packed4(static_cast<const uint8_t*>(data), i, true);
    case DType::kU4: return get_packed4(static_cast<const uint8_t*>(data), i, false);
    case DType::kI32: return static_cast<const int32_t*>(data)[i];
    case DType::kI64: return static_cast<double>(static_cast<const int64_t*>(data)[i]);
    case DType::kBool: return static_cast<const uint8_t*>(data)[i] != 0 ? 1.0 : 0.0;
  }
  return 0.0;
}

// Copies stored element `from` of src into logical element `to` of dst.
void copy_element(DType dtype, const void* src, int64_t from, void* dst, int64_t to) {
  if (is_packed(dtype)) {
    const int v = get_packed4(static_cast<const uint8_t*>(src), from, false);
    set_packed4(static_cast<uint8_t*>(dst), to, v);
    return;
  }
  const size_t size = static_cast<size_t>(dtype_bits(dtype) / 8);
  std::memcpy(static_cast<char*>(dst) + to * size, static_cast<const char*>(src) + from * size, size);
}

}  // namespace

void Tensor::access_failed(size_t element_size, bool stored) const {
  if (!stored && is_sparse()) {
    detail::internal_assert_failed(
        "!is_sparse()", __FILE__, __LINE__,
        fmt::format("data<T>() on a sparse ({}) tensor of shape {}: its storage holds the {} stored values, not the "
                    "logical ones; read values with dense_f32() or to_dense(), or stored_data<T>() in layout-aware "
                    "code",
                    sparse_format_name(sparse_->format), shape_to_string(shape_), stored_count()));
  }
  detail::internal_assert_failed("holds<T>(dtype)", __FILE__, __LINE__,
                                 fmt::format("data<T>() with a {}-byte element type on a {} tensor of shape {}",
                                             element_size, dtype_name(dtype_), shape_to_string(shape_)));
}

Expected<Tensor> Tensor::dense_f32(std::string_view what) const {
  COMPRESS_CHECK(defined(), StatusCode::kInvalidArgument, "{}: the tensor has no data", what);
  COMPRESS_CHECK(dtype_ == DType::kF32 && !is_quantized(), StatusCode::kUnsupported,
                 "{}: expected f32 values, got {}{} {}; dequantize or convert it first", what,
                 is_quantized() ? "quantized " : "", dtype_name(dtype_), shape_to_string(shape_));
  return to_dense();
}

double Tensor::element_as_double(int64_t i) const {
  COMPRESS_INTERNAL_ASSERT(!is_sparse(), "element_as_double on a sparse tensor; call to_dense() first");
  return stored_as_double(dtype_, raw_data(), i);
}

Expected<Tensor> Tensor::to_dense() const {
  if (!is_sparse()) return *this;
  COMPRESS_ASSIGN_OR_RETURN(Tensor dense, Tensor::zeros(dtype_, shape_));
  dense.quant_ = quant_;
  const SparseLayout& layout = *sparse_;
  int64_t rows = 0, cols = 0;
  matrix_dims(shape_, &rows, &cols);
  const void* src = raw_data();
  void* dst = dense.raw_data();
  // Note: zeros() fills with 0 bytes, which is 0 for every dtype. For
  // quantized storage the "empty" value is the zero point; fill it so that a
  // pruned entry dequantizes to exactly 0.
  if (quant_ && !is_packed(dtype_)) {
    for (int64_t i = 0; i < dense.numel(); ++i) {
      const int32_t zp = quant_->zero_points()[static_cast<size_t>(quant_->param_index(shape_, i))];
      if (dtype_ == DType::kI8) dense.data<int8_t>()[i] = static_cast<int8_t>(zp);
      else if (dtype_ == DType::kU8) dense.data<uint8_t>()[i] = static_cast<uint8_t>(zp);
      else if (dtype_ == DType::kI32) dense.data<int32_t>()[i] = zp;
    }
  } else if (quant_) {
    for (int64_t i = 0; i < dense.numel(); ++i) {
      set_packed4(dense.data<uint8_t>(), i, quant_->zero_points()[static_cast<size_t>(quant_->param_index(shape_, i))]);
    }
  }
  switch (layout.format) {
    case SparseFormat::kDense: break;
    case SparseFormat::kMask: {
      const uint8_t* mask = layout.indices[0].data<uint8_t>();
      for (int64_t i = 0; i < dense.numel(); ++i) {
        if (mask[i]) copy_element(dtype_, src, i, dst, i);
      }
      break;
    }
    case SparseFormat::kCsr: {
      const int64_t* row_ptr = layout.indices[0].data<int64_t>();
      const int32_t* col = layout.indices[1].data<int32_t>();
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = row_ptr[r]; k < row_ptr[r + 1]; ++k) copy_element(dtype_, src, k, dst, r * cols + col[k]);
      }
      break;
    }
    case SparseFormat::kNM: {
      const uint8_t* pos = layout.indices[0].data<uint8_t>();
      const int64_t groups = cols / layout.m;
      int64_t k = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t g = 0; g < groups; ++g) {
          for (int64_t j = 0; j < layout.n; ++j, ++k) {
            copy_element(dtype_, src, k, dst, r * cols + g * layout.m + pos[k]);
          }
        }
      }
      break;
    }
    case SparseFormat::kBlock: {
      const int64_t* row_ptr = layout.indices[0].data<int64_t>();
      const int32_t* col = layout.indices[1].data<int32_t>();
      const int64_t bh = layout.block_h, bw = layout.block_w;
      for (int64_t br = 0; br < rows / bh; ++br) {
        for (int64_t b = row_ptr[br]; b < row_ptr[br + 1]; ++b) {
          for (int64_t i = 0; i < bh; ++i) {
            for (int64_t j = 0; j < bw; ++j) {
              copy_element(dtype_, src, b * bh * bw + i * bw + j, dst, (br * bh + i) * cols + col[b] * bw + j);
            }
          }
        }
      }
      break;
    }
  }
  return dense;
}

// A quantized element counts as zero when it equals its zero point (it
// dequantizes to exactly 0).
double Tensor::sparsity() const {
  const int64_t n = numel();
  if (n == 0) return 0.0;
  if (is_sparse()) {
    auto dense = to_dense();
    return dense ? dense->sparsity() : 0.0;
  }
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double zero =
        quant_ ? quant_->zero_points()[static_cast<size_t>(quant_->param_index(shape_, i))] : 0.0;
    if (stored_as_double(dtype_, raw_data(), i) == zero) ++zeros;
  }
  return static_cast<double>(zeros) / static_cast<double>(n);
}

bool Tensor::bitwise_equal(const Tensor& o) const {
  if (defined() != o.defined()) return false;
  if (!defined()) return true;
  if (dtype_ != o.dtype_ || shape_ != o.shape_ || nbytes() != o.nbytes()) return false;
  if ((quant_ == nullptr) != (o.quant_ == nullptr) || (quant_ && *quant_ != *o.quant_)) return false;
  if (is_sparse() != o.is_sparse()) return false;
  if (is_sparse()) {
    const SparseLayout& a = *sparse_;
    const SparseLayout& b = *o.sparse_;
    if (a.format != b.format || a.n != b.n || a.m != b.m || a.block_h != b.block_h || a.block_w != b.block_w ||
        a.indices.size() != b.indices.size())
      return false;
    for (size_t i = 0; i < a.indices.size(); ++i) {
      if (!a.indices[i].bitwise_equal(b.indices[i])) return false;
    }
  }
  return nbytes() == 0 || std::memcmp(raw_data(), o.raw_data(), nbytes()) == 0;
}

}  // namespace compress::ir
