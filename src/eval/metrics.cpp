#include "compress/eval/metrics.h"

#include <fmt/format.h>

#include <algorithm>

#include "compress/support/check.h"
#include "compress/support/progress.h"

namespace compress::eval {

Expected<int64_t> count_top1(const ir::Tensor& logits, const std::vector<int64_t>& labels) {
  COMPRESS_CHECK(logits.dtype() == ir::DType::kF32 && logits.rank() == 2 && !logits.is_sparse(),
                 StatusCode::kInvalidArgument, "top-1: logits must be f32 [N, classes], got {}{}",
                 ir::dtype_name(logits.dtype()), ir::shape_to_string(logits.shape()));
  const int64_t n = logits.shape()[0], classes = logits.shape()[1];
  COMPRESS_CHECK(static_cast<int64_t>(labels.size()) == n, StatusCode::kInvalidArgument,
                 "top-1: {} labels for {} rows of logits", labels.size(), n);
  const float* data = logits.data<float>();
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = data + i * classes;
    const int64_t label = labels[static_cast<size_t>(i)];
    // A label the model cannot predict is a data mistake (a wrong label file,
    // another model's classes), not a miss: counting it as one would report
    // a plausible, wrong accuracy.
    COMPRESS_CHECK(label >= 0 && label < classes, StatusCode::kInvalidArgument,
                   "top-1: label {} of row {} is outside the model's {} classes [0, {}]; check that the labels "
                   "belong to this model",
                   label, i, classes, classes - 1);
    const int64_t best = std::max_element(row, row + classes) - row;
    if (best == label) ++correct;
  }
  return correct;
}

Expected<AccuracyResult> evaluate_top1(runtime::ExecutionPlan& plan, const DataSource& data, int64_t batch_size,
                                       bool show_progress) {
  COMPRESS_CHECK(data.has_labels(), StatusCode::kInvalidArgument, "{} has no labels to evaluate against",
                 data.describe());
  COMPRESS_CHECK(batch_size > 0, StatusCode::kInvalidArgument, "batch size must be > 0, got {}", batch_size);
  ProgressReporter progress("evaluating", data.size(),
                            show_progress ? ProgressReporter::Mode::kAuto : ProgressReporter::Mode::kOff);
  AccuracyResult result;
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    const int64_t count = std::min(batch_size, data.size() - start);
    COMPRESS_ASSIGN_OR_RETURN(Batch batch, data.batch(start, count));
    COMPRESS_ASSIGN_OR_RETURN(std::vector<ir::Tensor> outputs, plan.run({batch.inputs}));
    COMPRESS_CHECK(!outputs.empty(), StatusCode::kInvalidArgument, "the model produced no output");
    Expected<int64_t> counted = count_top1(outputs[0], batch.labels);
    if (!counted.has_value()) {
      return counted.status().with_context(fmt::format("{}, batch of samples [{}, {})", data.describe(), start,
                                                       start + count));
    }
    const int64_t correct = *counted;
    result.correct += correct;
    result.samples += count;
    progress.advance(count);
  }
  progress.finish();
  return result;
}

}  // namespace compress::eval
