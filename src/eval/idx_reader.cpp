// IDX (MNIST-format) datasets, plain or gzip-compressed, read as hostile input.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "compress/eval/dataset.h"
#include "compress/support/check.h"
#include "gzip_file.h"
#include "in_memory_source.h"

namespace compress::eval {
namespace {

// Upper bound on a decompressed IDX file (the full MNIST train set is 47 MB).
constexpr size_t kMaxIdxBytes = size_t{2} << 30;

Expected<std::string> read_maybe_gzip(const std::string& path) {
  std::string data, error;
  bool not_found = false;
  if (!gzip_file::read(path, kMaxIdxBytes, &data, &error, &not_found)) {
    return Status(not_found ? StatusCode::kNotFound : StatusCode::kCorruptFile, error);
  }
  return data;
}

uint32_t big_endian_u32(const std::string& data, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct IdxArray {
  std::vector<int64_t> dims;
  const unsigned char* data = nullptr;
};

// Header: 0x00 0x00 <type=0x08 (u8)> <rank>, then rank big-endian u32 dims.
Expected<IdxArray> parse_idx(const std::string& bytes, const std::string& path) {
  COMPRESS_CHECK(bytes.size() >= 4, StatusCode::kCorruptFile, "{}: {} bytes is too short for an IDX header", path,
                 bytes.size());
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  COMPRESS_CHECK(b[0] == 0 && b[1] == 0, StatusCode::kCorruptFile, "{}: not an IDX file (bad magic)", path);
  COMPRESS_CHECK(b[2] == 0x08, StatusCode::kUnsupported, "{}: IDX element type 0x{:02x} is not u8", path, b[2]);
  const size_t rank = b[3];
  COMPRESS_CHECK(rank >= 1 && rank <= 4, StatusCode::kCorruptFile, "{}: IDX rank {} out of range", path, rank);
  const size_t header = 4 + 4 * rank;
  COMPRESS_CHECK(bytes.size() >= header, StatusCode::kCorruptFile, "{}: truncated IDX header", path);
  IdxArray array;
  uint64_t count = 1;
  for (size_t i = 0; i < rank; ++i) {
    const uint64_t d = big_endian_u32(bytes, 4 + 4 * i);
    COMPRESS_CHECK(d <= kMaxIdxBytes && (d == 0 || count <= kMaxIdxBytes / d), StatusCode::kCorruptFile,
                   "{}: IDX dimensions are too large", path);
    count *= d;
    array.dims.push_back(static_cast<int64_t>(d));
  }
  COMPRESS_CHECK(bytes.size() - header == count, StatusCode::kCorruptFile,
                 "{}: IDX data has {} bytes, dimensions {} need {}", path, bytes.size() - header,
                 ir::shape_to_string(array.dims), count);
  array.data = b + header;
  return array;
}

}  // namespace

Expected<std::unique_ptr<DataSource>> open_idx(const std::string& images_path, const std::string& labels_path,
                                               const DatasetOptions& options) {
  COMPRESS_CHECK(std::isfinite(options.normalization.std) && options.normalization.std > 0 &&
                     std::isfinite(options.normalization.mean),
                 StatusCode::kInvalidArgument, "normalization std must be > 0 and mean finite (got mean {}, std {})",
                 options.normalization.mean, options.normalization.std);
  COMPRESS_ASSIGN_OR_RETURN(std::string image_bytes, read_maybe_gzip(images_path));
  COMPRESS_ASSIGN_OR_RETURN(IdxArray images, parse_idx(image_bytes, images_path));
  COMPRESS_CHECK(images.dims.size() >= 2, StatusCode::kCorruptFile, "{}: images need rank >= 2, got {}", images_path,
                 images.dims.size());
  int64_t n = images.dims[0];
  ir::Shape sample(images.dims.begin() + 1, images.dims.end());
  if (sample.size() == 2) sample.insert(sample.begin(), 1);  // [H, W] -> [1, H, W]
  std::vector<int64_t> labels;
  if (!labels_path.empty()) {
    COMPRESS_ASSIGN_OR_RETURN(std::string label_bytes, read_maybe_gzip(labels_path));
    COMPRESS_ASSIGN_OR_RETURN(IdxArray label_array, parse_idx(label_bytes, labels_path));
    COMPRESS_CHECK(label_array.dims.size() == 1 && label_array.dims[0] == n, StatusCode::kCorruptFile,
                   "{}: {} labels for {} images in {}", labels_path,
                   label_array.dims.empty() ? 0 : label_array.dims[0], n, images_path);
    labels.assign(label_array.data, label_array.data + n);
  }
  if (options.limit >= 0 && options.limit < n) {
    n = options.limit;
    if (!labels.empty()) labels.resize(static_cast<size_t>(n));
  }
  ir::Shape shape = sample;
  shape.insert(shape.begin(), n);
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor samples, ir::Tensor::zeros(ir::DType::kF32, shape));
  const float scale = 1.0f / (255.0f * options.normalization.std);
  const float shift = options.normalization.mean / options.normalization.std;
  float* out = samples.data<float>();
  for (int64_t i = 0; i < samples.numel(); ++i) out[i] = static_cast<float>(images.data[i]) * scale - shift;
  return std::unique_ptr<DataSource>(new InMemorySource(
      std::move(samples), std::move(labels), fmt::format("{} ({} samples)", images_path, n)));
}

}  // namespace compress::eval
