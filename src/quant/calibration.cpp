// Calibration over a DataSource with a progress bar.
#include "compress/quant/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "compress/runtime/backend.h"
#include "compress/support/logging.h"
#include "compress/support/progress.h"

namespace compress::quant {
namespace {

// A model converted with its reshapes fixed to one batch (TorchScript's
// attention bakes them in) fails on any other batch with a reshape error
// deep inside the graph; say which batch this was and, for a reshape error,
// what would work.
Status with_batch_hint(const Status& error, const ir::Graph& graph, int64_t start, int64_t count) {
  std::string hint = fmt::format(" (calibration batch of {} samples from sample {}", count, start);
  const std::vector<int64_t>& declared = graph.inputs()[0]->shape();
  if (error.message().find("reshape") != std::string::npos && !declared.empty() && declared[0] != count) {
    hint += fmt::format("; the model's input is declared with batch {}: a model whose reshapes were fixed at "
                        "conversion calibrates with batch {} and a sample count that is a multiple of it",
                        declared[0], declared[0]);
  }
  return Status(error.code(), error.message() + hint + ")");
}

}  // namespace

Status for_each_batch(const ir::Graph& graph, const std::vector<std::string>& values, const eval::DataSource& data,
                      const CalibrationOptions& options, const std::string& title, const BatchVisitor& visit) {
  if (options.samples < 1 || options.batch < 1) {
    return invalid_argument("calibration needs samples >= 1 and batch >= 1 (got {} and {})", options.samples,
                            options.batch);
  }
  if (graph.inputs().size() != 1) {
    return unsupported("calibration feeds one input; the graph has {}", graph.inputs().size());
  }
  const int64_t total = std::min(options.samples, data.size());
  if (total < 1) return invalid_argument("calibration data {} is empty", data.describe());

  ir::Graph probe = graph.clone();
  std::vector<size_t> output_index;
  for (const std::string& name : values) {
    ir::Value* v = probe.find_value(name);
    if (v == nullptr) return not_found("calibration: no value named '{}'", name);
    if (v->dtype() != ir::DType::kF32) return invalid_argument("calibration: value '{}' is not f32", name);
    const auto& outs = probe.outputs();
    auto it = std::find(outs.begin(), outs.end(), v);
    if (it == outs.end()) {
      probe.add_output(v);
      output_index.push_back(probe.outputs().size() - 1);
    } else {
      output_index.push_back(static_cast<size_t>(it - outs.begin()));
    }
  }

  COMPRESS_ASSIGN_OR_RETURN(auto backend, runtime::make_backend(options.backend));
  COMPRESS_ASSIGN_OR_RETURN(auto plan, backend->compile(probe));
  ProgressReporter progress(title, total,
                            options.progress ? ProgressReporter::Mode::kAuto : ProgressReporter::Mode::kOff);
  std::vector<const ir::Tensor*> seen(values.size());
  for (int64_t start = 0; start < total; start += options.batch) {
    const int64_t count = std::min(options.batch, total - start);
    COMPRESS_ASSIGN_OR_RETURN(eval::Batch batch, data.batch(start, count));
    Expected<std::vector<ir::Tensor>> outputs = plan->run({batch.inputs});
    if (!outputs.has_value()) return with_batch_hint(outputs.status(), graph, start, count);
    for (size_t i = 0; i < values.size(); ++i) seen[i] = &outputs->at(output_index[i]);
    COMPRESS_RETURN_IF_ERROR(visit(seen));
    progress.advance(count);
  }
  progress.finish();
  return Status::ok();
}

Expected<CalibrationResult> calibrate(const ir::Graph& graph, const std::vector<std::string>& values,
                                      const eval::DataSource& data, const CalibrationOptions& options) {
  std::vector<std::unique_ptr<Observer>> observers;
  for (size_t i = 0; i < values.size(); ++i) {
    COMPRESS_ASSIGN_OR_RETURN(auto observer, make_observer(options.observer, options.observer_options));
    observers.push_back(std::move(observer));
  }
  COMPRESS_RETURN_IF_ERROR(for_each_batch(graph, values, data, options, "calibrating",
                                          [&observers](const std::vector<const ir::Tensor*>& seen) {
                                            for (size_t i = 0; i < observers.size(); ++i) {
                                              observers[i]->observe(seen[i]->data<float>(), seen[i]->numel());
                                            }
                                            return Status::ok();
                                          }));

  CalibrationResult result;
  result.samples = std::min(options.samples, data.size());
  for (size_t i = 0; i < observers.size(); ++i) {
    const Observer& o = *observers[i];
    if (o.skipped_count() > 0) {
      log_warning("calibration: {} non-finite values of '{}' skipped ({} finite used)", o.skipped_count(), values[i],
                  o.finite_count());
      result.skipped[values[i]] = o.skipped_count();
    }
    Expected<Range> range = o.range();
    if (!range.has_value()) return range.status().with_context(fmt::format("calibrating '{}'", values[i]));
    result.ranges[values[i]] = *range;
  }
  return result;
}

}  // namespace compress::quant
