// IDX (MNIST-format) datasets, plain or gzip-compressed, read as hostile input.
#include <algorithm>
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
  // The product of the nonzero dimensions: a zero makes the element count
  // 0, but the other dimensions still become a sample shape that later code
  // multiplies out, so they must not overflow either ([0, 2^31, 2^31, 2^31]).
  uint64_t extent = 1;
  for (size_t i = 0; i < rank; ++i) {
    const uint64_t d = big_endian_u32(dims + 4 * i);
    // Four u32 dims can overflow u64; the f32 samples take 4 bytes each.
    COMPRESS_CHECK(d == 0 || extent <= (UINT64_MAX / 4) / d, StatusCode::kCorruptFile,
                   "{}: IDX dimensions are too large", path);
    if (d != 0) extent *= d;
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
  // A plain file's size was checked against the header above, so its data
  // is read in one go. A gzip header's dimensions are only a claim until the
  // data inflates: a 70-byte file can declare 2 GB of images, within the
  // limit, and allocating that up front would use (and zero) 2 GB before
  // the missing data is noticed. So the buffer grows with the data that
  // actually arrives, doubling from 1 MiB, and never past the declared size.
  constexpr uint64_t kFirstChunk = uint64_t{1} << 20;
  try {
    got = 0;
    while (array.data.size() < count) {
      const uint64_t have = array.data.size();
      const uint64_t want = in.compressed() ? std::min(count - have, std::max(kFirstChunk, have)) : count;
      array.data.resize(static_cast<size_t>(have + want));
      size_t n = 0;
      COMPRESS_RETURN_IF_ERROR(read_exact(array.data.data() + have, static_cast<size_t>(want), &n));
      array.data.resize(static_cast<size_t>(have + n));
      got = array.data.size();
      if (n < want) break;  // the end of the data
    }
  } catch (const std::exception&) {
    return io_error("{}: out of memory for {} bytes of IDX data", path, count);
  }
  char extra = 0;
  size_t trailing = 0;
  if (got == count) COMPRESS_RETURN_IF_ERROR(read_exact(&extra, 1, &trailing));
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
  // One sample must fit the limit even when there are no samples: batches
  // and models compute with its size (elements x bits), and an empty
  // [0, 2e9, 2e9] would overflow them. read_idx bounded the product.
  uint64_t sample_elements = 1;
  for (int64_t d : sample) sample_elements *= static_cast<uint64_t>(d);
  COMPRESS_RETURN_IF_ERROR(check_limit(Limit::kDatasetBytes, sample_elements * 4,
                                       fmt::format("{}: one IDX sample of shape {} as f32", images_path,
                                                   ir::shape_to_string(sample))));
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
