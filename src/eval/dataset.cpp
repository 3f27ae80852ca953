#include <cmath>
#include <cstdlib>
#include <cstring>

#include "compress/eval/dataset.h"
#include "compress/io/npy.h"
#include "compress/support/check.h"
#include "in_memory_source.h"

namespace compress::eval {

InMemorySource::InMemorySource(ir::Tensor samples, std::vector<int64_t> labels, std::string description)
    : samples_(std::move(samples)), labels_(std::move(labels)), description_(std::move(description)) {
  sample_shape_.assign(samples_.shape().begin() + 1, samples_.shape().end());
}

Expected<Batch> InMemorySource::batch(int64_t start, int64_t count) const {
  COMPRESS_CHECK(start >= 0 && count >= 0 && start <= size() && count <= size() - start,
                 StatusCode::kInvalidArgument, "batch [{}, {}) is outside the dataset of {} samples", start,
                 start + count, size());
  ir::Shape shape = sample_shape_;
  shape.insert(shape.begin(), count);
  Batch b;
  COMPRESS_ASSIGN_OR_RETURN(b.inputs, ir::Tensor::zeros(samples_.dtype(), shape));
  const size_t sample_bytes = static_cast<size_t>(ir::numel(sample_shape_) * ir::dtype_bits(samples_.dtype()) / 8);
  if (count > 0) {
    std::memcpy(b.inputs.raw_data(), static_cast<const uint8_t*>(samples_.raw_data()) + start * sample_bytes,
                static_cast<size_t>(count) * sample_bytes);
  }
  if (!labels_.empty()) b.labels.assign(labels_.begin() + start, labels_.begin() + start + count);
  return b;
}

namespace {

// f32 samples (images, features) or integer ones (token ids for an embedding).
bool is_sample_dtype(ir::DType t) { return t == ir::DType::kF32 || t == ir::DType::kI64 || t == ir::DType::kI32; }

}  // namespace

Expected<std::unique_ptr<DataSource>> from_tensor(ir::Tensor samples, std::vector<int64_t> labels,
                                                  std::string description) {
  COMPRESS_CHECK(samples.defined() && is_sample_dtype(samples.dtype()) && !samples.is_sparse() && samples.rank() >= 1,
                 StatusCode::kInvalidArgument, "{}: samples must be a dense f32, i64 or i32 tensor [N, ...]",
                 description);
  COMPRESS_CHECK(labels.empty() || static_cast<int64_t>(labels.size()) == samples.shape()[0],
                 StatusCode::kInvalidArgument, "{}: {} labels for {} samples", description, labels.size(),
                 samples.shape()[0]);
  return std::unique_ptr<DataSource>(new InMemorySource(std::move(samples), std::move(labels), std::move(description)));
}

namespace {

Expected<std::unique_ptr<DataSource>> open_npy(const std::string& samples_path, const std::string& labels_path,
                                               const DatasetOptions& options) {
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor samples, io::load_npy(samples_path));
  COMPRESS_CHECK(is_sample_dtype(samples.dtype()) && samples.rank() >= 1, StatusCode::kInvalidArgument,
                 "{}: samples must be f32, i64 or i32 [N, ...], got {}{}", samples_path,
                 ir::dtype_name(samples.dtype()), ir::shape_to_string(samples.shape()));
  // A NaN or Inf sample would poison calibration ranges and statistics far
  // from here (a "Hessian is not positive definite" in SparseGPT); say where.
  if (samples.dtype() == ir::DType::kF32) {
    const float* x = samples.data<float>();
    const int64_t per_sample = samples.shape()[0] > 0 ? samples.numel() / samples.shape()[0] : 0;
    for (int64_t i = 0; i < samples.numel(); ++i) {
      COMPRESS_CHECK(std::isfinite(x[i]), StatusCode::kInvalidArgument,
                     "{}: sample {} has a non-finite value ({}) at element {}; clean the data (np.isfinite) first",
                     samples_path, i / per_sample, x[i], i % per_sample);
    }
  }
  std::vector<int64_t> labels;
  if (!labels_path.empty()) {
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor label_tensor, io::load_npy(labels_path));
    COMPRESS_CHECK(label_tensor.rank() == 1 && !ir::is_float(label_tensor.dtype()), StatusCode::kInvalidArgument,
                   "{}: labels must be an integer array [N]", labels_path);
    for (int64_t i = 0; i < label_tensor.numel(); ++i) {
      const double label = label_tensor.element_as_double(i);
      COMPRESS_CHECK(label >= 0, StatusCode::kInvalidArgument,
                     "{}: label {} of sample {} is negative (class labels are 0, 1, ...)", labels_path, label, i);
      labels.push_back(static_cast<int64_t>(label));
    }
  }
  // NPY samples are taken as they are: normalization applies to raw pixels only.
  if (options.limit >= 0 && options.limit < samples.shape()[0]) {
    ir::Shape shape = samples.shape();
    shape[0] = options.limit;
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor head, ir::Tensor::zeros(samples.dtype(), shape));
    std::memcpy(head.raw_data(), samples.raw_data(), head.nbytes());
    samples = head;
    if (!labels.empty()) labels.resize(static_cast<size_t>(options.limit));
  }
  const int64_t n = samples.shape()[0];
  return from_tensor(std::move(samples), std::move(labels), fmt::format("{} ({} samples)", samples_path, n));
}

std::pair<std::string, std::string> split_pair(const std::string& text) {
  const auto comma = text.find(',');
  if (comma == std::string::npos) return {text, ""};
  return {text.substr(0, comma), text.substr(comma + 1)};
}

}  // namespace

Expected<std::unique_ptr<DataSource>> open_dataset(const std::string& spec, const DatasetOptions& options) {
  const auto colon = spec.find(':');
  COMPRESS_CHECK(colon != std::string::npos, StatusCode::kInvalidArgument,
                 "dataset '{}': expected KIND:ARGS (fashion-mnist:train, fashion-mnist:test, idx:IMAGES,LABELS, "
                 "npy:SAMPLES[,LABELS])",
                 spec);
  const std::string kind = spec.substr(0, colon);
  const std::string args = spec.substr(colon + 1);
  Expected<std::unique_ptr<DataSource>> source = Status(StatusCode::kInvalidArgument, "");
  if (kind == "fashion-mnist") {
    COMPRESS_CHECK(args == "train" || args == "test", StatusCode::kInvalidArgument,
                   "dataset '{}': the split must be 'train' or 'test'", spec);
    const char* env = std::getenv("COMPRESS_FASHION_MNIST_DIR");
    const std::string dir = env != nullptr && *env != '\0' ? env : kFashionMnistDir;
    const std::string prefix = args == "train" ? "train" : "t10k";
    source = open_idx(dir + "/" + prefix + "-images-idx3-ubyte.gz", dir + "/" + prefix + "-labels-idx1-ubyte.gz",
                      options);
    if (!source && source.status().code() == StatusCode::kNotFound) {
      return source.status().with_context(fmt::format(
          "dataset '{}' (install Debian's dataset-fashion-mnist package, or set COMPRESS_FASHION_MNIST_DIR)", spec));
    }
  } else if (kind == "idx") {
    const auto [images, labels] = split_pair(args);
    source = open_idx(images, labels, options);
  } else if (kind == "npy") {
    const auto [samples, labels] = split_pair(args);
    source = open_npy(samples, labels, options);
  } else {
    return invalid_argument("dataset '{}': unknown kind '{}' (use fashion-mnist, idx or npy)", spec, kind);
  }
  if (!source) return source.status().with_context(fmt::format("dataset '{}'", spec));
  return source;
}

}  // namespace compress::eval
