// Tensor: dtype + shape over ref-counted, 64-byte-aligned storage (owned or an mmapped view).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "compress/ir/dtype.h"
#include "compress/ir/quant_params.h"
#include "compress/support/status.h"

namespace compress::ir {

using Shape = std::vector<int64_t>;

// Element count of a shape; nullopt for a negative dim or int64 overflow.
std::optional<int64_t> checked_numel(const Shape& shape);
int64_t numel(const Shape& shape);  // for shapes already validated
std::string shape_to_string(const Shape& shape);

inline constexpr size_t kTensorAlignment = 64;
inline constexpr int kMaxRank = 8;

// A block of bytes. Either owned (aligned heap allocation) or borrowed from a
// mapping that `keep_alive` holds open (an mmapped .cmf file).
class Storage {
 public:
  static Expected<std::shared_ptr<Storage>> allocate(size_t nbytes);  // zero-filled
  static std::shared_ptr<Storage> borrow(void* data, size_t nbytes, std::shared_ptr<void> keep_alive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  bool is_borrowed() const { return keep_alive_ != nullptr; }

 private:
  Storage(void* data, size_t nbytes, std::shared_ptr<void> keep_alive)
      : data_(data), nbytes_(nbytes), keep_alive_(std::move(keep_alive)) {}
  void* data_;
  size_t nbytes_;
  std::shared_ptr<void> keep_alive_;  // null when owned
};

struct SparseLayout;

// Whether element type T is the one data<T>() hands out for `dtype`
// (Note [Reading tensor values]).
template <typename T>
constexpr bool holds(DType dtype) {
  if constexpr (std::is_same_v<T, float>) return dtype == DType::kF32;
  if constexpr (std::is_same_v<T, uint16_t>) return dtype == DType::kF16 || dtype == DType::kBF16;
  if constexpr (std::is_same_v<T, int8_t>) return dtype == DType::kI8;
  if constexpr (std::is_same_v<T, uint8_t>) {
    return dtype == DType::kU8 || dtype == DType::kBool || dtype == DType::kI4 || dtype == DType::kU4 ||
           dtype == DType::kI8;
  }
  if constexpr (std::is_same_v<T, int32_t>) return dtype == DType::kI32;
  if constexpr (std::is_same_v<T, int64_t>) return dtype == DType::kI64;
  return false;
}

// Note [Sparse tensors]
// A sparse tensor keeps its logical shape (what ops see); its storage holds
// only the stored values (nnz of them, in the layout's order) and
// `sparse_layout()` holds the index tensors. `stored_count()` is the number of
// stored values; numel() is always the logical element count. Kernels that do
// not understand a layout call to_dense() first.
class Tensor {
 public:
  Tensor() = default;

  // Zero-filled dense tensor.
  static Expected<Tensor> zeros(DType dtype, Shape shape);
  // Dense f32/i64/i32/... tensor copied from a vector (sizes must match).
  template <typename T>
  static Tensor from_vector(DType dtype, Shape shape, const std::vector<T>& values);
  static Tensor scalar_f32(float value);
  // Wrap existing storage (the .cmf loader). `storage` must hold exactly the
  // bytes the dtype and stored element count need.
  static Expected<Tensor> from_storage(DType dtype, Shape shape, std::shared_ptr<Storage> storage,
                                       std::shared_ptr<const QuantParams> quant = nullptr,
                                       std::shared_ptr<const SparseLayout> sparse = nullptr);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int64_t i) const { return shape_.at(static_cast<size_t>(i < 0 ? i + rank() : i)); }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t numel() const;
  int64_t stored_count() const;  // numel() unless sparse
  size_t nbytes() const;         // bytes of stored values

  // Note [Reading tensor values]
  // data<T>() is the logical values of a DENSE tensor whose dtype T holds
  // (float for f32, int8_t for i8, uint16_t for f16/bf16, uint8_t for u8,
  // bool and the packed 4-bit types, int32_t, int64_t). On a sparse tensor,
  // or with a T that does not match the dtype, it throws an internal error
  // instead of handing out the stored values as if they were the logical
  // ones: a pass that read a loaded CSR weight that way once folded garbage
  // into a model. Code that reads a weight's values calls dense_f32() (or
  // to_dense()); code that understands layouts (kernels, the .cmf reader and
  // writer, layout conversions) reads the stored values with stored_data<T>().
  template <typename T>
  T* data() {
    check_access<T>(false);
    return static_cast<T*>(raw_data());
  }
  template <typename T>
  const T* data() const {
    check_access<T>(false);
    return static_cast<const T*>(raw_data());
  }
  // The stored values in the layout's order (stored_count() of them); the
  // same as data<T>() for a dense tensor.
  template <typename T>
  T* stored_data() {
    check_access<T>(true);
    return static_cast<T*>(raw_data());
  }
  template <typename T>
  const T* stored_data() const {
    check_access<T>(true);
    return static_cast<const T*>(raw_data());
  }
  // Raw bytes of the stored values (serialization, hashing, memcpy).
  void* raw_data() { return storage_ ? storage_->data() : nullptr; }
  const void* raw_data() const { return storage_ ? storage_->data() : nullptr; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  const std::shared_ptr<const QuantParams>& quant() const { return quant_; }
  bool is_quantized() const { return quant_ != nullptr; }
  const std::shared_ptr<const SparseLayout>& sparse_layout() const { return sparse_; }
  bool is_sparse() const;

  // Same data, new metadata (shared storage, no copy).
  Tensor with_quant(std::shared_ptr<const QuantParams> quant) const;
  Expected<Tensor> reshaped(Shape shape) const;
  // Deep copy (owned storage).
  Expected<Tensor> clone() const;
  // Dense copy of a sparse tensor; a dense tensor is returned as is.
  Expected<Tensor> to_dense() const;
  // The logical f32 values of a weight-like tensor, dense: the tensor itself
  // when it is a dense f32, a dense copy when it is sparse. A quantized or
  // non-f32 tensor is an error naming `what` (a pass that reads float values
  // must not reinterpret int8 storage).
  Expected<Tensor> dense_f32(std::string_view what) const;
  // Element i as double, for any non-packed or packed dtype (slow; tests, printers).
  double element_as_double(int64_t i) const;
  // Fraction of logical elements that are zero (stored zeros count as zero).
  double sparsity() const;
  // Bit-for-bit equality of dtype, shape, values, quant params and layout.
  bool bitwise_equal(const Tensor& other) const;

 private:
  template <typename T>
  void check_access(bool stored) const {
    if (!holds<T>(dtype_) || (!stored && is_sparse())) access_failed(sizeof(T), stored);
  }
  [[noreturn]] void access_failed(size_t element_size, bool stored) const;

  DType dtype_ = DType::kF32;
  Shape shape_;
  std::shared_ptr<Storage> storage_;
  std::shared_ptr<const QuantParams> quant_;
  std::shared_ptr<const SparseLayout> sparse_;
};

// Packed 4-bit access: element i of a u4/i4 buffer.
int get_packed4(const uint8_t* data, int64_t i, bool is_signed);
void set_packed4(uint8_t* data, int64_t i, int value);

template <typename T>
Tensor Tensor::from_vector(DType dtype, Shape shape, const std::vector<T>& values) {
  Tensor t = zeros(dtype, std::move(shape)).value();
  if (static_cast<size_t>(t.numel()) != values.size() || sizeof(T) * values.size() != t.nbytes()) {
    throw Error(invalid_argument("Tensor::from_vector: {} values of {} bytes do not fill shape {} of {}",
                                 values.size(), sizeof(T), shape_to_string(t.shape()), dtype_name(dtype)));
  }
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

}  // namespace compress::ir
