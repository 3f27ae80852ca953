// NumPy .npy reading and writing (v1/v2/v3 headers, little-endian, C order).
#pragma once

#include <string>

#include "compress/ir/tensor.h"
#include "compress/support/status.h"

namespace compress::io {

// Supports f32, f16, f64 (converted to f32), i8, u8, i32, i64, bool. The file
// is untrusted: header length, shape and data size are all checked.
Expected<ir::Tensor> load_npy(const std::string& path);
Expected<ir::Tensor> parse_npy(const std::string& bytes, const std::string& source_name);
// Writes a dense tensor atomically.
Status save_npy(const ir::Tensor& tensor, const std::string& path);

}  // namespace compress::io
