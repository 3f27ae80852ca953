// Element types of the IR and their constexpr traits table.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace compress::ir {

// The numeric values are part of the .cmf format: never renumber, only append.
enum class DType : uint8_t {
  kF32 = 1,
  kF16 = 2,
  kBF16 = 3,
  kI8 = 4,
  kU8 = 5,
  kI4 = 6,  // two per byte, low nibble first
  kU4 = 7,  // two per byte, low nibble first
  kI32 = 8,
  kI64 = 9,
  kBool = 10,
};

struct DTypeTraits {
  DType dtype;
  std::string_view name;
  int bits;            // bits per element (4 for the packed types)
  bool is_float;
  bool is_signed;
  bool is_integer;     // i4..i64, u4, u8 (not bool)
  int64_t min_value;   // integer range (0/0 for floats and bool)
  int64_t max_value;
};

inline constexpr std::array<DTypeTraits, 10> kDTypeTable = {{
    {DType::kF32, "f32", 32, true, true, false, 0, 0},
    {DType::kF16, "f16", 16, true, true, false, 0, 0},
    {DType::kBF16, "bf16", 16, true, true, false, 0, 0},
    {DType::kI8, "i8", 8, false, true, true, -128, 127},
    {DType::kU8, "u8", 8, false, false, true, 0, 255},
    {DType::kI4, "i4", 4, false, true, true, -8, 7},
    {DType::kU4, "u4", 4, false, false, true, 0, 15},
    {DType::kI32, "i32", 32, false, true, true, -2147483648LL, 2147483647LL},
    {DType::kI64, "i64", 64, false, true, true, INT64_MIN, INT64_MAX},
    {DType::kBool, "bool", 8, false, false, false, 0, 1},
}};

// Traits of a valid dtype. Callers validate untrusted codes with
// dtype_from_code() first.
constexpr const DTypeTraits& traits(DType dtype) {
  // The clamp keeps an out-of-range enum (a bug) inside the table; it also
  // lets GCC prove the access in bounds.
  const size_t index = static_cast<size_t>(static_cast<uint8_t>(dtype)) - 1;
  return kDTypeTable[index < kDTypeTable.size() ? index : 0];
}
constexpr std::string_view dtype_name(DType dtype) { return traits(dtype).name; }
constexpr int dtype_bits(DType dtype) { return traits(dtype).bits; }
constexpr bool is_packed(DType dtype) { return traits(dtype).bits < 8; }
constexpr bool is_float(DType dtype) { return traits(dtype).is_float; }
constexpr bool is_quantizable_storage(DType dtype) {
  return dtype == DType::kI8 || dtype == DType::kU8 || dtype == DType::kI4 || dtype == DType::kU4 ||
         dtype == DType::kI32;
}

std::optional<DType> dtype_from_code(uint32_t code);
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes needed to store `count` elements (packed types round up to whole bytes).
// Returns nullopt on overflow.
std::optional<uint64_t> storage_bytes(DType dtype, uint64_t count);

// Scalar conversions for f16/bf16 storage.
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);  // round to nearest even

}  // namespace compress::ir
