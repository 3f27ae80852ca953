// IDX (MNIST-format) datasets, plain or gzip-compressed, read as hostile input.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "compress/eval/dataset.h"
#include "compress/support/check.h"
#include "compress/support/limits.h"
#include "gzip_file.h"
#include "in_memory_source.h"

namespace compress::eval {
namespace {

uint32_t big_endian_u32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct IdxArray {
  std::vector<int64_t> dims;
  std::string data;  // the u8 elements, dims' product of them
};

// Reads an IDX file (plain or gzip) as a stream: the header first, then
// exactly the data it declares, after checking that size against the
// dataset limit (Note [Resource limits]), so neither a hostile header nor a
// gzip bomb makes us read or allocate more than the limit allows.
// Header: 0x00 0x00 <type=0x08 (u8)> <rank>, then rank big-endian u32 dims.
Expected<IdxArray> read_idx(const std::string& path) {
  gzip_file::Stream in;
  std::string error;
  bool missing = false;
  if (!in.open(path, &error, &missing)) {
    return Status(missing ? StatusCode::kNotFound : StatusCode::kInvalidArgument, error);
  }
  auto read_exact = [&](void* dst, size_t n, size_t* got) -> Status {
    const long long r = in.read(dst, n, &error);
    if (r < 0) return Status(StatusCode::kCorruptFile, error);
    *got = static_cast<size_t>(r);
    return Status::ok();
  };
  unsigned char magic[4];
  size_t got = 0;
  COMPRESS_RETURN_IF_ERROR(read_exact(magic, 4, &got));
  COMPRESS_CHECK(got == 4, StatusCode::kCorruptFile, "{}: {} bytes is too short for an IDX header", path, got);
  COMPRESS_CHECK(magic[0] == 0 && magic[1] == 0, StatusCode::kCorruptFile, "{}: not an IDX file (bad magic)", path);
  COMPRESS_CHECK(magic[2] == 0x08, StatusCode::kUnsupported, "{}: IDX element type 0x{:02x} is not u8", path, magic[2]);
  const size_t rank = magic[3];
  COMPRESS_CHECK(rank >= 1 && rank <= 4, StatusCode::kCorruptFile, "{}: IDX rank {} out of range", path, rank);
  unsigned char dims[16];
  COMPRESS_RETURN_IF_ERROR(read_exact(dims, 4 * rank, &got));
  COMPRESS_CHECK(got == 4 * rank, StatusCode::kCorruptFile, "{}: truncated IDX header", path);
  IdxArray array;
  uint64_t count = 1;
  for (size_t i = 0; i < rank; ++i) {
    const uint64_t d = big_endian_u32(dims + 4 * i);
    // Four u32 dims can overflow u64; the f32 samples take 4 bytes each.
    COMPRESS_CHECK(d == 0 || count <= (UINT64_MAX / 4) / d, StatusCode::kCorruptFile,
                   "{}: IDX dimensions are too large", path);
    count *= d;
    array.dims.push_back(static_cast<int64_t>(d));
  }
  const uint64_t header = 4 + 4 * rank;
  if (!in.compressed()) {
    COMPRESS_CHECK(in.file_size() - header == count, StatusCode::kCorruptFile,
                   "{}: IDX data has {} bytes, dimensions {} need {}", path, in.file_size() - header,
                   ir::shape_to_string(array.dims), count);
  }
  // The samples become f32 in memory: 4 bytes per element.
  COMPRESS_RETURN_IF_ERROR(check_limit(Limit::kDatasetBytes, count * 4,
                                       fmt::format("{}: IDX dimensions {} as f32 samples", path,
                                                   ir::shape_to_string(array.dims))));
  try {
    array.data.resize(static_cast<size_t>(count));
  } catch (const std::exception&) {
    return io_error("{}: out of memory for {} bytes of IDX data", path, count);
  }
  COMPRESS_RETURN_IF_ERROR(read_exact(array.data.data(), array.data.size(), &got));
  char extra = 0;
  size_t trailing = 0;
  if (got == array.data.size()) COMPRESS_RETURN_IF_ERROR(read_exact(&extra, 1, &trailing));
  COMPRESS_CHECK(got == count && trailing == 0, StatusCode::kCorruptFile,
                 "{}: IDX data has {} bytes, dimensions {} need {}", path,
                 trailing == 0 ? std::to_string(got) : std::string("more than ") + std::to_string(count),
                 ir::shape_to_string(array.dims), count);
  return array;
}

}  // namespace

Expected<std::unique_ptr<DataSource>> open_idx(const std::string& images_path, const std::string& labels_path,
                                               const DatasetOptions& options) {
  COMPRESS_CHECK(std::isfinite(options.normalization.std) && options.normalization.std > 0 &&
                     std::isfinite(options.normalization.mean),
                 StatusCode::kInvalidArgument, "normalization std must be > 0 and mean finite (got mean {}, std {})",
                 options.normalization.mean, options.normalization.std);
  COMPRESS_ASSIGN_OR_RETURN(IdxArray images, read_idx(images_path));
  COMPRESS_CHECK(images.dims.size() >= 2, StatusCode::kCorruptFile, "{}: images need rank >= 2, got {}", images_path,
                 images.dims.size());
  int64_t n = images.dims[0];
  ir::Shape sample(images.dims.begin() + 1, images.dims.end());
  if (sample.size() == 2) sample.insert(sample.begin(), 1);  // [H, W] -> [1, H, W]
  std::vector<int64_t> labels;
  if (!labels_path.empty()) {
    COMPRESS_ASSIGN_OR_RETURN(IdxArray label_array, read_idx(labels_path));
    COMPRESS_CHECK(label_array.dims.size() == 1 && label_array.dims[0] == n, StatusCode::kCorruptFile,
                   "{}: {} labels for {} images in {}", labels_path,
                   label_array.dims.empty() ? 0 : label_array.dims[0], n, images_path);
    const auto* label_bytes = reinterpret_cast<const unsigned char*>(label_array.data.data());
    labels.assign(label_bytes, label_bytes + n);
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
  const auto* pixels = reinterpret_cast<const unsigned char*>(images.data.data());
  for (int64_t i = 0; i < samples.numel(); ++i) out[i] = static_cast<float>(pixels[i]) * scale - shift;
  return std::unique_ptr<DataSource>(new InMemorySource(
      std::move(samples), std::move(labels), fmt::format("{} ({} samples)", images_path, n)));
}

}  // namespace compress::eval
