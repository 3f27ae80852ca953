// The distillation teacher: its logits and tapped values per batch, on a fast backend, optionally cached on disk.
#pragma once

// Only the distill layer (which links LibTorch) includes this.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/runtime/backend.h"
#include "compress/support/status.h"

namespace compress::eval {
class DataSource;
}

namespace compress::distill {

// Note [Teacher runs]
// The teacher needs no gradients, so it runs as an inference plan: a copy of
// its graph whose outputs are its first output (the logits) followed by the
// tapped values, compiled on `backend` ("auto": onednn where built, else the
// reference backend). A value that is a graph output is never fused away
// by the onednn plan, so every tapped value is available, at the price of
// the fusions it would have joined. The teacher runs as deployed (batch norm
// on running statistics). `describe()` names the backend in logs.
class TeacherRunner {
 public:
  static Expected<std::unique_ptr<TeacherRunner>> create(const ir::Graph& teacher,
                                                         const std::vector<std::string>& values,
                                                         const std::string& backend = "auto");
  // [logits, values...] for `inputs` [batch, ...], f32 tensors on the CPU.
  Expected<std::vector<at::Tensor>> run(const at::Tensor& inputs);
  // The names of what run() returns, the logits' first, and each one's shape without the batch dim.
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<std::vector<int64_t>>& sample_shapes() const { return sample_shapes_; }
  const std::string& backend() const { return backend_name_; }
  // checksum64 of the .cmf serialization of the teacher as compiled (its
  // graph with the tapped values as outputs): the cache key's teacher part.
  Expected<uint64_t> teacher_checksum() const;

 private:
  TeacherRunner() = default;
  std::unique_ptr<runtime::Backend> backend_;
  std::unique_ptr<runtime::ExecutionPlan> plan_;
  std::string backend_name_;
  std::vector<std::string> names_;
  std::vector<std::vector<int64_t>> sample_shapes_;
  ir::Graph graph_;  // what the plan was compiled from
  mutable std::optional<uint64_t> checksum_;
};

// Note [Teacher cache]
// For multi-epoch runs the teacher's outputs are computed once per sample
// and kept in a file: a header (magic "CTKTEACH", version, the key, the
// sample count, each value's name and per-sample shape, a checksum of the
// header), then each value's rows [samples, ...] as f32, then a checksum of
// those rows. The key is checksum64 over the teacher's checksum, the value
// names, the data's description and sample count and the bytes of every
// input sample: the same teacher on the same data (same order, same
// normalization) finds its cache; anything else, or a file that is truncated
// or fails a checksum, is rebuilt with a warning that says why. The file is
// written atomically (a crash leaves the old file or none). The cache is
// held in memory while training; its size is logged and is the rows' bytes.
class TeacherCache {
 public:
  // Opens `path` if it holds the outputs of `teacher` on the first `samples`
  // of `data`; otherwise runs the teacher over them in batches of exactly
  // `batch` (give the training batch size: then every row is bit-identical
  // to the live teacher's during training) and writes the file.
  static Expected<std::shared_ptr<TeacherCache>> open_or_build(const std::string& path, TeacherRunner& teacher,
                                                               const eval::DataSource& data, int64_t samples,
                                                               int64_t batch, bool progress);
  // [logits, values...] for these sample indices, in this order.
  Expected<std::vector<at::Tensor>> gather(const std::vector<int64_t>& samples) const;
  int64_t samples() const { return samples_; }
  uint64_t bytes() const;
  bool reused() const { return reused_; }  // found on disk (false: computed now)
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int64_t samples_ = 0;
  std::vector<std::vector<int64_t>> sample_shapes_;
  std::vector<at::Tensor> rows_;  // one [samples, ...] tensor per value
  bool reused_ = false;
};

}  // namespace compress::distill
