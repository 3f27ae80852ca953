// Accuracy metrics over model outputs and a dataset run through a backend.
#pragma once

#include <cstdint>
#include <vector>

#include "compress/eval/dataset.h"
#include "compress/runtime/backend.h"

namespace compress::eval {

// Number of rows of `logits` [N, classes] whose argmax equals the label
// (ties go to the lowest index, like torch.argmax).
Expected<int64_t> count_top1(const ir::Tensor& logits, const std::vector<int64_t>& labels);

struct AccuracyResult {
  int64_t samples = 0;
  int64_t correct = 0;
  double top1() const { return samples > 0 ? 100.0 * static_cast<double>(correct) / static_cast<double>(samples) : 0.0; }
};

// Runs the plan over the whole dataset in batches (with a progress bar) and
// counts top-1 hits on the plan's first output.
Expected<AccuracyResult> evaluate_top1(runtime::ExecutionPlan& plan, const DataSource& data, int64_t batch_size = 256,
                                       bool show_progress = true);

}  // namespace compress::eval
