// ByteReader: a bounds-checked little-endian cursor over untrusted bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "compress/support/status.h"

namespace compress::io {

// Every read checks the remaining length first and reports failures as
// kCorruptFile naming the source, the absolute byte offset and the field, so a
// truncated or hostile buffer is an error message, never an out-of-bounds read.
class ByteReader {
 public:
  // `base_offset` is the file offset of data[0], used only in messages.
  ByteReader(const uint8_t* data, size_t size, uint64_t base_offset, std::string source)
      : data_(data), size_(size), base_(base_offset), source_(std::move(source)) {}

  uint64_t offset() const { return base_ + pos_; }  // absolute, for messages
  size_t remaining() const { return size_ - pos_; }
  bool at_end() const { return pos_ == size_; }
  const std::string& source() const { return source_; }

  Status u8(uint8_t* out, std::string_view what) { return read_le(out, what); }
  Status u32(uint32_t* out, std::string_view what) { return read_le(out, what); }
  Status u64(uint64_t* out, std::string_view what) { return read_le(out, what); }
  Status i32(int32_t* out, std::string_view what) { return read_le(out, what); }
  Status i64(int64_t* out, std::string_view what) { return read_le(out, what); }
  Status f32(float* out, std::string_view what) {
    uint32_t bits = 0;
    COMPRESS_RETURN_IF_ERROR(read_le(&bits, what));
    std::memcpy(out, &bits, sizeof bits);
    return Status::ok();
  }
  Status f64(double* out, std::string_view what) {
    uint64_t bits = 0;
    COMPRESS_RETURN_IF_ERROR(read_le(&bits, what));
    std::memcpy(out, &bits, sizeof bits);
    return Status::ok();
  }

  // u64 length + bytes; the length is checked against what is left before
  // the string is allocated.
  Status string(std::string* out, std::string_view what) {
    const uint64_t at = offset();
    uint64_t length = 0;
    COMPRESS_RETURN_IF_ERROR(u64(&length, what));
    if (length > remaining()) {
      return fail_at(at, "{}: string length {} exceeds the {} bytes left in the header", what, length,
                     remaining());
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return Status::ok();
  }

  // u64 element count of an array whose elements take at least
  // `min_element_bytes` each: a count the remaining bytes cannot hold is
  // rejected before anything is reserved for it.
  Status count(uint64_t* out, std::string_view what, uint64_t min_element_bytes) {
    const uint64_t at = offset();
    COMPRESS_RETURN_IF_ERROR(u64(out, what));
    if (min_element_bytes > 0 && *out > remaining() / min_element_bytes) {
      return fail_at(at, "{}: count {} needs at least {} bytes each but only {} bytes are left in the header",
                     what, *out, min_element_bytes, remaining());
    }
    return Status::ok();
  }

  template <typename... Args>
  Status fail_at(uint64_t at, fmt::format_string<Args...> format, Args&&... args) const {
    return corrupt_file("{}: byte {}: {}", source_, at, fmt::format(format, std::forward<Args>(args)...));
  }

 private:
  template <typename T>
  Status read_le(T* out, std::string_view what) {
    if (remaining() < sizeof(T)) {
      return fail_at(offset(), "{}: needs {} bytes but the header has only {} left", what, sizeof(T),
                     remaining());
    }
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if constexpr (sizeof(T) == 2) v = static_cast<T>(__builtin_bswap16(static_cast<uint16_t>(v)));
    if constexpr (sizeof(T) == 4) v = static_cast<T>(__builtin_bswap32(static_cast<uint32_t>(v)));
    if constexpr (sizeof(T) == 8) v = static_cast<T>(__builtin_bswap64(static_cast<uint64_t>(v)));
#endif
    *out = v;
    pos_ += sizeof(T);
    return Status::ok();
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t base_;
  std::string source_;
};

// Reads a little-endian integer from a buffer the caller has bounds-checked.
template <typename T>
inline T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  if constexpr (sizeof(T) == 4) v = static_cast<T>(__builtin_bswap32(static_cast<uint32_t>(v)));
  if constexpr (sizeof(T) == 8) v = static_cast<T>(__builtin_bswap64(static_cast<uint64_t>(v)));
#endif
  return v;
}

}  // namespace compress::io
