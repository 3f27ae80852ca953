// NumPy .npy reader and writer; the reader treats the header as hostile text.
#include "compress/io/npy.h"

#include <cctype>
#include <cstring>
#include <limits>
#include <new>

#include "byte_reader.h"
#include "compress/io/atomic_file.h"
#include "compress/ir/sparse_layout.h"
#include "compress/support/limits.h"
#include "file_util.h"

namespace compress::io {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicSize = 6;
// numpy itself refuses headers over 10000 bytes by default; allow more for
// v2 files but keep a bound so the header parse stays cheap.
constexpr uint64_t kMaxNpyHeader = uint64_t{1} << 20;

// The dtypes this reader understands and what they become.
struct NpyType {
  ir::DType dtype;
  size_t item_bytes;
  bool is_f64;  // converted to f32 on load
};

std::optional<NpyType> npy_type(std::string_view descr, std::string* why) {
  if (descr.size() < 2) {
    *why = "too short";
    return std::nullopt;
  }
  const char order = descr[0];
  const std::string_view code = descr.substr(1);
  if (order == '>') {
    *why = "big-endian data is not supported (save with a little-endian dtype, e.g. astype('<f4'))";
    return std::nullopt;
  }
  if (order != '<' && order != '|' && order != '=') {
    *why = "expected a byte-order prefix '<', '|' or '='";
    return std::nullopt;
  }
  if (code == "f4") return NpyType{ir::DType::kF32, 4, false};
  if (code == "f2") return NpyType{ir::DType::kF16, 2, false};
  if (code == "f8") return NpyType{ir::DType::kF32, 8, true};
  if (code == "i1") return NpyType{ir::DType::kI8, 1, false};
  if (code == "u1") return NpyType{ir::DType::kU8, 1, false};
  if (code == "i4") return NpyType{ir::DType::kI32, 4, false};
  if (code == "i8") return NpyType{ir::DType::kI64, 8, false};
  if (code == "b1") return NpyType{ir::DType::kBool, 1, false};
  *why = "supported dtypes are f4, f2, f8, i1, u1, i4, i8 and b1";
  return std::nullopt;
}

// A tiny parser for the one Python dict literal .npy headers contain:
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  Status parse(std::string* descr, bool* fortran, ir::Shape* shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    COMPRESS_RETURN_IF_ERROR(expect('{'));
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      std::string key;
      COMPRESS_RETURN_IF_ERROR(quoted(&key));
      skip_ws();
      COMPRESS_RETURN_IF_ERROR(expect(':'));
      skip_ws();
      if (key == "descr") {
        if (have_descr) return fail("duplicate key 'descr'");
        have_descr = true;
        COMPRESS_RETURN_IF_ERROR(quoted(descr));
      } else if (key == "fortran_order") {
        if (have_fortran) return fail("duplicate key 'fortran_order'");
        have_fortran = true;
        COMPRESS_RETURN_IF_ERROR(boolean(fortran));
      } else if (key == "shape") {
        if (have_shape) return fail("duplicate key 'shape'");
        have_shape = true;
        COMPRESS_RETURN_IF_ERROR(tuple(shape));
      } else {
        return fail(fmt::format("unexpected key '{}'", key));
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') break;
      return fail("expected ',' or '}'");
    }
    ++pos_;  // '}'
    skip_ws();
    if (pos_ != s_.size()) return fail("unexpected text after the header dict");
    if (!have_descr || !have_fortran || !have_shape) {
      return fail("header must have the keys 'descr', 'fortran_order' and 'shape'");
    }
    return Status::ok();
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  Status fail(const std::string& what) const {
    return corrupt_file("{}: malformed .npy header at character {}: {}", source_, pos_, what);
  }
  Status expect(char c) {
    if (peek() != c) return fail(fmt::format("expected '{}'", c));
    ++pos_;
    return Status::ok();
  }
  Status quoted(std::string* out) {
    const char q = peek();
    if (q != '\'' && q != '"') return fail("expected a quoted string");
    const size_t end = s_.find(q, pos_ + 1);
    if (end == std::string_view::npos) return fail("unterminated string");
    out->assign(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return Status::ok();
  }
  Status boolean(bool* out) {
    if (s_.substr(pos_, 4) == "True") {
      *out = true;
      pos_ += 4;
    } else if (s_.substr(pos_, 5) == "False") {
      *out = false;
      pos_ += 5;
    } else {
      return fail("expected True or False");
    }
    return Status::ok();
  }
  Status tuple(ir::Shape* shape) {
    COMPRESS_RETURN_IF_ERROR(expect('('));
    shape->clear();
    while (true) {
      skip_ws();
      if (peek() == ')') break;
      if (shape->size() == static_cast<size_t>(ir::kMaxRank)) {
        return fail(fmt::format("shape has more than {} dimensions", ir::kMaxRank));
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) return fail("expected a non-negative dimension");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        const int digit = peek() - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) return fail("dimension overflows int64");
        v = v * 10 + digit;
        ++pos_;
      }
      shape->push_back(v);
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ')') break;
      return fail("expected ',' or ')' in shape");
    }
    ++pos_;
    return Status::ok();
  }

  std::string_view s_;
  const std::string& source_;
  size_t pos_ = 0;
};

Expected<ir::Tensor> parse(const std::string& bytes, const std::string& source) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() < kNpyMagicSize + 2 || std::memcmp(data, kNpyMagic, kNpyMagicSize) != 0) {
    return corrupt_file("{}: not a .npy file (missing the \\x93NUMPY magic)", source);
  }
  const uint8_t major = data[6], minor = data[7];
  if (major < 1 || major > 3 || minor != 0) {
    return unsupported("{}: .npy format version {}.{} is not supported (1.0, 2.0 and 3.0 are)", source, major,
                       minor);
  }
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t prefix = kNpyMagicSize + 2 + len_bytes;
  if (bytes.size() < prefix) return corrupt_file("{}: truncated .npy preamble", source);
  const uint64_t header_len = major == 1 ? load_le<uint16_t>(data + 8) : load_le<uint32_t>(data + 8);
  if (header_len > kMaxNpyHeader) {
    return corrupt_file("{}: .npy header length {} exceeds the {}-byte limit", source, header_len, kMaxNpyHeader);
  }
  if (header_len > bytes.size() - prefix) {
    return corrupt_file("{}: .npy header length {} runs past the end of the {}-byte file", source, header_len,
                        bytes.size());
  }
  const std::string_view header(bytes.data() + prefix, static_cast<size_t>(header_len));

  std::string descr;
  bool fortran = false;
  ir::Shape shape;
  COMPRESS_RETURN_IF_ERROR(HeaderParser(header, source).parse(&descr, &fortran, &shape));
  std::string why;
  const std::optional<NpyType> type = npy_type(descr, &why);
  if (!type) return unsupported("{}: .npy dtype '{}': {}", source, descr, why);
  const std::optional<int64_t> numel = ir::checked_numel(shape);
  if (!numel) return corrupt_file("{}: .npy shape {} overflows int64", source, ir::shape_to_string(shape));
  if (fortran && shape.size() > 1) {
    return unsupported("{}: Fortran-order arrays are not supported (save with np.ascontiguousarray)", source);
  }
  const uint64_t count = static_cast<uint64_t>(*numel);
  const uint64_t available = bytes.size() - prefix - header_len;
  if (count > available / type->item_bytes || count * type->item_bytes != available) {
    return corrupt_file("{}: .npy data is {} bytes but shape {} of '{}' needs {} x {} bytes", source, available,
                        ir::shape_to_string(shape), descr, count, type->item_bytes);
  }
  const uint8_t* payload = data + prefix + header_len;
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor tensor, ir::Tensor::zeros(type->dtype, shape));
  if (type->is_f64) {
    float* out = tensor.data<float>();
    for (uint64_t i = 0; i < count; ++i) {
      double v;
      std::memcpy(&v, payload + 8 * i, 8);
      out[i] = static_cast<float>(v);
    }
  } else if (type->dtype == ir::DType::kBool) {
    // numpy can hold bytes other than 0/1 in a bool array (views); the IR's
    // bool is exactly 0 or 1.
    uint8_t* out = tensor.data<uint8_t>();
    for (uint64_t i = 0; i < count; ++i) out[i] = payload[i] != 0;
  } else if (available) {
    std::memcpy(tensor.raw_data(), payload, static_cast<size_t>(available));
  }
  return tensor;
}

const char* descr_of(ir::DType dtype) {
  switch (dtype) {
    case ir::DType::kF32: return "<f4";
    case ir::DType::kF16: return "<f2";
    case ir::DType::kI8: return "|i1";
    case ir::DType::kU8: return "|u1";
    case ir::DType::kI32: return "<i4";
    case ir::DType::kI64: return "<i8";
    case ir::DType::kBool: return "|b1";
    default: return nullptr;
  }
}

}  // namespace

Expected<ir::Tensor> parse_npy(const std::string& bytes, const std::string& source_name) {
  try {
    return parse(bytes, source_name);
  } catch (const std::bad_alloc&) {
    return io_error("{}: out of memory reading .npy data", source_name);
  } catch (const Error& e) {
    return e.status().with_context(source_name);
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, fmt::format("{}: unexpected error: {}", source_name, e.what()));
  }
}

Expected<ir::Tensor> load_npy(const std::string& path) {
  // The file is read whole, so its size is the bound (Note [Resource limits]).
  COMPRESS_ASSIGN_OR_RETURN(OpenFile file, open_for_reading(path));
  COMPRESS_RETURN_IF_ERROR(check_limit(Limit::kNpyBytes, file.size, path));
  COMPRESS_ASSIGN_OR_RETURN(std::string bytes, read_file(path, limit_bytes(Limit::kNpyBytes)));
  return parse_npy(bytes, path);
}

Status save_npy(const ir::Tensor& tensor, const std::string& path) {
  if (!tensor.defined()) return invalid_argument("save_npy {}: tensor is undefined", path);
  try {
    ir::Tensor dense = tensor;
    if (tensor.is_sparse()) {
      Expected<ir::Tensor> d = tensor.to_dense();
      if (!d) return d.status().with_context(fmt::format("save_npy {}", path));
      dense = std::move(*d);
    }
    const char* descr = descr_of(dense.dtype());
    if (descr == nullptr) {
      return unsupported("save_npy {}: dtype {} has no .npy equivalent (convert to f32 or a byte-sized integer first)",
                         path, ir::dtype_name(dense.dtype()));
    }
    std::string shape;
    for (int64_t d : dense.shape()) shape += fmt::format("{}, ", d);
    if (dense.rank() > 1) shape.resize(shape.size() - 2);  // (n,) keeps its comma, (a, b) does not
    if (dense.rank() == 1) shape.resize(shape.size() - 1);
    std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, shape);
    // Pad with spaces so the data starts on a 64-byte boundary, as numpy does.
    const size_t prefix_v1 = kNpyMagicSize + 2 + 2;
    size_t total = (prefix_v1 + dict.size() + 1 + 63) / 64 * 64;
    const bool v2 = total - prefix_v1 > 0xffff;
    const size_t prefix = v2 ? kNpyMagicSize + 2 + 4 : prefix_v1;
    total = (prefix + dict.size() + 1 + 63) / 64 * 64;
    dict.append(total - prefix - dict.size() - 1, ' ');
    dict.push_back('\n');

    std::string bytes(kNpyMagic, kNpyMagicSize);
    bytes.push_back(static_cast<char>(v2 ? 2 : 1));
    bytes.push_back(0);
    const uint32_t len = static_cast<uint32_t>(dict.size());
    for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) bytes.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
    bytes += dict;
    bytes.append(static_cast<const char*>(dense.raw_data()), dense.nbytes());
    return write_file_atomically(path, bytes);
  } catch (const std::bad_alloc&) {
    return io_error("save_npy {}: out of memory", path);
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, fmt::format("save_npy {}: {}", path, e.what()));
  }
}

}  // namespace compress::io
