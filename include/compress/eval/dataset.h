// Datasets for calibration, fine-tuning and evaluation: the DataSource interface, IDX and NPY readers, specs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compress/ir/tensor.h"
#include "compress/support/status.h"

namespace compress::eval {

// A batch of samples: inputs [count, ...sample_shape] (f32) and, when the
// dataset has them, one class label per sample.
struct Batch {
  ir::Tensor inputs;
  std::vector<int64_t> labels;
};

// Note [DataSource]
// A random-access dataset of samples of one shape and dtype (f32 images or
// features; i64/i32 token ids for models that start with an embedding) with
// optional integer labels. Implementations are immutable after construction, so batches can
// be read from several threads. Pipelines implement it to feed their own data
// to calibration, fine-tuning and evaluation.
class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual int64_t size() const = 0;
  virtual const ir::Shape& sample_shape() const = 0;
  virtual bool has_labels() const = 0;
  // Samples [start, start + count); start + count <= size().
  virtual Expected<Batch> batch(int64_t start, int64_t count) const = 0;
  // A description for logs and reports ("fashion-mnist:test (10000 samples)").
  virtual std::string describe() const = 0;
};

// Per-channel-free normalization applied to image pixels: (x/255 - mean) / std.
struct Normalization {
  float mean = 0.0f;
  float std = 1.0f;
};

struct DatasetOptions {
  Normalization normalization;
  int64_t limit = -1;  // use only the first `limit` samples (-1: all)
};

// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Opens a dataset from a spec:
//   fashion-mnist:train | fashion-mnist:test   (Debian's copy, or COMPRESS_FASHION_MNIST_DIR)
//   idx:IMAGES[,LABELS]                        (IDX files, optionally .gz)
//   npy:SAMPLES[,LABELS]                       (f32/i64/i32 [N, ...] and integer [N] arrays)
// Errors name the spec and the file.
Expected<std::unique_ptr<DataSource>> open_dataset(const std::string& spec, const DatasetOptions& options = {});

// IDX (LeCun's MNIST format), plain or gzip-compressed. u8 images of rank
// >= 2 ([N, H, W] becomes samples [1, H, W]); labels u8 [N].
Expected<std::unique_ptr<DataSource>> open_idx(const std::string& images_path, const std::string& labels_path,
                                               const DatasetOptions& options = {});

// Samples already in memory ([N, ...] f32, i64 or i32) with optional labels.
Expected<std::unique_ptr<DataSource>> from_tensor(ir::Tensor samples, std::vector<int64_t> labels,
                                                  std::string description);

}  // namespace compress::eval
