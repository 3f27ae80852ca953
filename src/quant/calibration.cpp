// Calibration over a DataSource with a progress bar.
#include "compress/quant/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "compress/eval/activation_probe.h"
#include "compress/support/logging.h"

namespace compress::quant {
Status for_each_batch(const ir::Graph& graph, const std::vector<std::string>& values, const eval::DataSource& data,
                      const CalibrationOptions& options, const std::string& title, const BatchVisitor& visit) {
  for (const std::string& name : values) {
    const ir::Value* v = graph.find_value(name);
    if (v != nullptr && v->dtype() != ir::DType::kF32) return invalid_argument("{}: value '{}' is not f32", title, name);
  }
  eval::ProbeOptions probe;
  probe.samples = options.samples;
  probe.batch = options.batch;
  probe.backend = options.backend;
  probe.title = title;
  probe.progress = options.progress;
  return eval::probe_values(graph, values, data, probe,
                            [&visit](const eval::ProbeBatch& batch) { return visit(batch.values); });
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
