// The distillation teacher as an inference plan with extra outputs, and its on-disk cache (Notes [Teacher runs],
// [Teacher cache]).
#include "compress/distill/teacher.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "compress/eval/dataset.h"
#include "compress/io/atomic_file.h"
#include "compress/io/cmf.h"
#include "compress/io/cmf_format.h"
#include "compress/ir/verifier.h"
#include "compress/support/logging.h"
#include "compress/support/progress.h"
#include "compress/torch/tensor_convert.h"

namespace compress::distill {
namespace {

constexpr char kCacheMagic[8] = {'C', 'T', 'K', 'T', 'E', 'A', 'C', 'H'};
constexpr uint32_t kCacheVersion = 1;
// Far above any cache a distillation run here needs, far below a corrupt
// header's wish: the rows must fit in memory next to training.
constexpr uint64_t kMaxCacheBytes = uint64_t{16} << 30;

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

// Bounds-checked reads from a cache file's bytes; any read past the end
// leaves ok false.
struct Reader {
  const std::string& bytes;
  size_t at = 0;
  bool ok = true;
  template <typename T>
  T get() {
    T value{};
    if (at + sizeof(T) > bytes.size()) {
      ok = false;
      return value;
    }
    std::memcpy(&value, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return value;
  }
};

uint64_t combine(uint64_t seed, const void* data, size_t size) {
  std::string buf(reinterpret_cast<const char*>(&seed), sizeof(seed));
  buf.append(static_cast<const char*>(data), size);
  return io::cmf::checksum64(buf.data(), buf.size());
}

// The cache key of Note [Teacher cache].
Expected<uint64_t> cache_key(const TeacherRunner& teacher, const eval::DataSource& data, int64_t samples,
                             int64_t batch) {
  COMPRESS_ASSIGN_OR_RETURN(uint64_t key, teacher.teacher_checksum());
  for (const std::string& name : teacher.names()) key = combine(key, name.data(), name.size());
  const std::string described = data.describe();
  key = combine(key, described.data(), described.size());
  key = combine(key, &samples, sizeof(samples));
  for (int64_t start = 0; start < samples; start += batch) {
    COMPRESS_ASSIGN_OR_RETURN(eval::Batch b, data.batch(start, std::min(batch, samples - start)));
    const uint64_t part = io::cmf::checksum64(b.inputs.raw_data(), b.inputs.nbytes());
    key = combine(key, &part, sizeof(part));
  }
  return key;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string header_bytes(uint64_t key, int64_t samples, const std::vector<std::string>& names,
                         const std::vector<std::vector<int64_t>>& shapes) {
  std::string out(kCacheMagic, sizeof(kCacheMagic));
  put<uint32_t>(out, kCacheVersion);
  put<uint32_t>(out, static_cast<uint32_t>(names.size()));
  put<uint64_t>(out, key);
  put<int64_t>(out, samples);
  for (size_t v = 0; v < names.size(); ++v) {
    put<uint32_t>(out, static_cast<uint32_t>(names[v].size()));
    out += names[v];
    put<uint32_t>(out, static_cast<uint32_t>(shapes[v].size()));
    for (int64_t d : shapes[v]) put<int64_t>(out, d);
  }
  return out;
}

}  // namespace

Expected<std::unique_ptr<TeacherRunner>> TeacherRunner::create(const ir::Graph& teacher,
                                                               const std::vector<std::string>& values,
                                                               const std::string& backend) {
  if (teacher.inputs().size() != 1 || teacher.outputs().empty()) {
    return invalid_argument(
        "the teacher has {} inputs and {} outputs; distillation needs one input and the logits "
        "as the first output",
        teacher.inputs().size(), teacher.outputs().size());
  }
  std::unique_ptr<TeacherRunner> runner(new TeacherRunner());
  ir::Graph g = teacher.clone();
  // Only the logits and the tapped values are outputs, so the plan computes
  // nothing else.
  std::vector<ir::Value*> outputs = {g.outputs()[0]};
  runner->names_ = {g.outputs()[0]->name()};
  for (const std::string& name : values) {
    ir::Value* v = g.find_value(name);
    if (v == nullptr) return not_found("the teacher has no value '{}'", name);
    if (v->is_constant()) return invalid_argument("the teacher value '{}' is a constant, not an activation", name);
    outputs.push_back(v);
    runner->names_.push_back(name);
  }
  g.set_outputs(outputs);
  g.remove_dead_nodes();
  COMPRESS_RETURN_IF_ERROR(ir::verify(g).with_context("the teacher with its tapped values as outputs"));
  for (const ir::Value* v : outputs) {
    if (v->dtype() != ir::DType::kF32) {
      return invalid_argument("the teacher value '{}' is {}, not f32", v->name(), ir::dtype_name(v->dtype()));
    }
    runner->sample_shapes_.emplace_back(v->shape().begin() + (v->shape().empty() ? 0 : 1), v->shape().end());
  }
  std::string chosen = backend;
  if (backend == "auto") {
    const std::vector<std::string> available = runtime::available_backends();
    chosen = std::find(available.begin(), available.end(), "onednn") != available.end() ? "onednn" : "reference";
  }
  COMPRESS_ASSIGN_OR_RETURN(runner->backend_, runtime::make_backend(chosen));
  COMPRESS_ASSIGN_OR_RETURN(runner->plan_, runner->backend_->compile(g));
  runner->backend_name_ = chosen;
  runner->graph_ = std::move(g);
  return runner;
}

Expected<uint64_t> TeacherRunner::teacher_checksum() const {
  // Only a cache needs it, so a live run never serializes the teacher.
  if (!checksum_) {
    COMPRESS_ASSIGN_OR_RETURN(std::string bytes, io::serialize_cmf(graph_));
    checksum_ = io::cmf::checksum64(bytes.data(), bytes.size());
  }
  return *checksum_;
}

Expected<std::vector<at::Tensor>> TeacherRunner::run(const at::Tensor& inputs) {
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor in, compress::torch::from_aten(inputs.detach().contiguous()));
  COMPRESS_ASSIGN_OR_RETURN(std::vector<ir::Tensor> outs, plan_->run({in}));
  std::vector<at::Tensor> result;
  result.reserve(outs.size());
  for (const ir::Tensor& t : outs) {
    COMPRESS_ASSIGN_OR_RETURN(at::Tensor a, compress::torch::to_aten(t));
    result.push_back(std::move(a));
  }
  return result;
}

Expected<std::shared_ptr<TeacherCache>> TeacherCache::open_or_build(const std::string& path, TeacherRunner& teacher,
                                                                    const eval::DataSource& data, int64_t samples,
                                                                    int64_t batch, bool progress) {
  if (samples < 1 || samples > data.size()) {
    return invalid_argument("teacher cache: {} samples asked of {}", samples, data.describe());
  }
  batch = std::max<int64_t>(1, batch);
  auto cache = std::make_shared<TeacherCache>();
  cache->path_ = path;
  cache->samples_ = samples;
  cache->sample_shapes_ = teacher.sample_shapes();
  const std::vector<std::string>& names = teacher.names();
  uint64_t row_bytes = 0;
  for (const auto& shape : cache->sample_shapes_) row_bytes += static_cast<uint64_t>(numel_of(shape)) * sizeof(float);
  if (row_bytes * static_cast<uint64_t>(samples) > kMaxCacheBytes) {
    return invalid_argument(
        "teacher cache {}: {} samples of {} bytes each are {:.1f} GiB, above the {} GiB limit; tap "
        "fewer or smaller values, or train without teacher_cache",
        path, samples, row_bytes, static_cast<double>(row_bytes * samples) / (1 << 30), kMaxCacheBytes >> 30);
  }
  COMPRESS_ASSIGN_OR_RETURN(const uint64_t key, cache_key(teacher, data, samples, batch));
  const std::string header = header_bytes(key, samples, names, cache->sample_shapes_);

  // An existing file: used when its header matches and both checksums hold.
  std::string why_rebuilt;
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::ostringstream content;
      content << in.rdbuf();
      const std::string bytes = content.str();
      Reader r{bytes};
      const bool header_matches = bytes.size() >= header.size() && bytes.compare(0, header.size(), header) == 0;
      const bool is_cache = bytes.compare(0, sizeof(kCacheMagic), std::string(kCacheMagic, sizeof(kCacheMagic))) == 0;
      if (is_cache && bytes.size() < header.size() + sizeof(uint64_t)) {
        why_rebuilt = fmt::format("it has {} bytes, fewer than its header needs (truncated?)", bytes.size());
      } else if (!header_matches) {
        why_rebuilt = !is_cache ? "it is not a teacher cache"
                                : "it was made for another teacher, other values or other data (the key differs)";
      } else {
        r.at = header.size();
        const uint64_t header_sum = r.get<uint64_t>();
        const uint64_t payload = row_bytes * static_cast<uint64_t>(samples);
        if (!r.ok || header_sum != io::cmf::checksum64(header.data(), header.size())) {
          why_rebuilt = "its header checksum does not match";
        } else if (bytes.size() != r.at + payload + sizeof(uint64_t)) {
          why_rebuilt = fmt::format("it has {} bytes, not the {} its header implies (truncated?)", bytes.size(),
                                    r.at + payload + sizeof(uint64_t));
        } else {
          const char* rows = bytes.data() + r.at;
          r.at += payload;
          const uint64_t payload_sum = r.get<uint64_t>();
          if (payload_sum != io::cmf::checksum64(rows, payload)) {
            why_rebuilt = "its data checksum does not match (corrupt)";
          } else {
            for (const auto& shape : cache->sample_shapes_) {
              std::vector<int64_t> full = {samples};
              full.insert(full.end(), shape.begin(), shape.end());
              at::Tensor t = at::empty(full, at::kFloat);
              std::memcpy(t.data_ptr<float>(), rows, t.nbytes());
              rows += t.nbytes();
              cache->rows_.push_back(std::move(t));
            }
            cache->reused_ = true;
            log_info("teacher cache {}: reused ({} samples, {:.1f} MB)", path, samples, cache->bytes() / 1e6);
            return cache;
          }
        }
      }
      log_warning("teacher cache {}: recomputing it: {}", path, why_rebuilt);
    }
  }

  // Build: the teacher over the samples in data order, then one atomic write.
  for (const auto& shape : cache->sample_shapes_) {
    std::vector<int64_t> full = {samples};
    full.insert(full.end(), shape.begin(), shape.end());
    cache->rows_.push_back(at::empty(full, at::kFloat));
  }
  ProgressReporter bar(fmt::format("teacher cache ({})", teacher.backend()),
                       (samples + batch - 1) / std::min(batch, samples),
                       progress ? ProgressReporter::Mode::kAuto : ProgressReporter::Mode::kOff);
  // Every row is computed in a batch of exactly `batch` samples, the last
  // batch overlapping the one before it: a backend may pick its kernel by the
  // batch size, and rows from the training batch size are bit-identical to
  // what the live teacher computes during training.
  const int64_t window = std::min(batch, samples);
  for (int64_t start = 0; start < samples; start += window) {
    const int64_t count = std::min(window, samples - start);
    const int64_t first = start + count - window;
    COMPRESS_ASSIGN_OR_RETURN(eval::Batch b, data.batch(first, window));
    COMPRESS_ASSIGN_OR_RETURN(at::Tensor inputs, compress::torch::to_aten(b.inputs));
    COMPRESS_ASSIGN_OR_RETURN(std::vector<at::Tensor> outs, teacher.run(inputs));
    for (size_t v = 0; v < outs.size(); ++v) {
      cache->rows_[v].narrow(0, start, count).copy_(outs[v].narrow(0, window - count, count));
    }
    bar.advance();
  }
  bar.finish();
  std::string bytes = header;
  put<uint64_t>(bytes, io::cmf::checksum64(header.data(), header.size()));
  const size_t payload_start = bytes.size();
  for (const at::Tensor& t : cache->rows_) bytes.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  put<uint64_t>(bytes, io::cmf::checksum64(bytes.data() + payload_start, bytes.size() - payload_start));
  COMPRESS_RETURN_IF_ERROR(io::write_file_atomically(path, bytes).with_context("teacher cache " + path));
  log_info("teacher cache {}: computed on {} ({} samples, {:.1f} MB)", path, teacher.backend(), samples,
           cache->bytes() / 1e6);
  return cache;
}

Expected<std::vector<at::Tensor>> TeacherCache::gather(const std::vector<int64_t>& samples) const {
  for (int64_t s : samples) {
    if (s < 0 || s >= samples_) {
      return invalid_argument("teacher cache {}: sample {} is outside the {} cached samples", path_, s, samples_);
    }
  }
  const at::Tensor index = at::tensor(samples, at::kLong);
  std::vector<at::Tensor> out;
  out.reserve(rows_.size());
  for (const at::Tensor& rows : rows_) out.push_back(rows.index_select(0, index));
  return out;
}

uint64_t TeacherCache::bytes() const {
  uint64_t n = 0;
  for (const at::Tensor& t : rows_) n += t.nbytes();
  return n;
}

}  // namespace compress::distill
