// Observers: collect the value range of a tensor over calibration batches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compress/support/status.h"

namespace compress::quant {

struct Range {
  float min = 0.0f;
  float max = 0.0f;
};

// Note [Non-finite calibration values]
// NaN and +-Inf say nothing about the range a quantized tensor should cover,
// and one of them would make every scale NaN or Inf. Observers skip them and
// count them; calibration warns with the count. A tensor that had no finite
// value at all has no range (an error from range()).
class Observer {
 public:
  virtual ~Observer() = default;
  virtual std::string name() const = 0;
  virtual void observe(const float* data, int64_t count) = 0;
  virtual Expected<Range> range() const = 0;
  int64_t finite_count() const { return finite_; }
  int64_t skipped_count() const { return skipped_; }

 protected:
  int64_t finite_ = 0;
  int64_t skipped_ = 0;
};

// The smallest and largest finite value seen.
// The range of the finite values of data[0, count) and how many there are
// (NaN and +-Inf are counted in `skipped`, not in the range). Vectorized and
// split across threads; min and max are exact, so the result does not depend
// on the thread count. `finite` == 0 leaves min/max meaningless.
struct FiniteRange {
  float min = 0.0f;
  float max = 0.0f;
  int64_t finite = 0;
  int64_t skipped = 0;
};
FiniteRange finite_range(const float* data, int64_t count);

class MinMaxObserver : public Observer {
 public:
  std::string name() const override { return "minmax"; }
  void observe(const float* data, int64_t count) override;
  Expected<Range> range() const override;

 private:
  float min_ = 0.0f;
  float max_ = 0.0f;
};

// [percentile(100 - p), percentile(p)] of every finite value seen, nearest
// rank on the sorted values (index ceil(p/100 * n) - 1), so rare outliers do
// not stretch the scale. Keeps the values (4 bytes each) until range().
class PercentileObserver : public Observer {
 public:
  explicit PercentileObserver(double percentile = 99.99) : percentile_(percentile) {}
  std::string name() const override { return "percentile"; }
  void observe(const float* data, int64_t count) override;
  Expected<Range> range() const override;

 private:
  double percentile_;
  std::vector<float> values_;
};

// The range [a * min, a * max] (min, max widened to include 0) whose u8
// asymmetric quantization has the smallest mean squared error over the
// values seen, for a in {1, 0.99, ..., 0.30}: clips outliers when the
// rounding error saved on the bulk outweighs their clipping error. Keeps the
// values like PercentileObserver; the search uses at most 2^20 of them (an
// even stride), so it is deterministic.
class MseObserver : public Observer {
 public:
  std::string name() const override { return "mse"; }
  void observe(const float* data, int64_t count) override;
  Expected<Range> range() const override;

 private:
  std::vector<float> values_;
  float min_ = 0.0f;
  float max_ = 0.0f;
};

// Exponential moving average of each batch's min and max (one observe()
// call is one batch): the first batch sets the range, then
// min = momentum * min + (1 - momentum) * batch_min (max alike). A batch
// with no finite value leaves the average unchanged. Robust to one
// unusual batch, unlike minmax; with momentum 0 it is the last batch's range.
class MovingAverageObserver : public Observer {
 public:
  explicit MovingAverageObserver(double momentum = 0.9) : momentum_(momentum) {}
  std::string name() const override { return "moving_average"; }
  void observe(const float* data, int64_t count) override;
  Expected<Range> range() const override;

 private:
  double momentum_;
  bool seen_ = false;
  double min_ = 0.0;
  double max_ = 0.0;
};

// Note [KL range search]
// TensorRT's entropy calibration: a histogram of |x| with kKlBins bins; for
// every candidate threshold T (i bins, i from the number of quantized levels
// to kKlBins) the reference distribution P is the first i bins with the
// clipped tail added to bin i-1, and Q is those i bins quantized to the
// target number of levels (i / levels bins merged per level, the last level
// taking the remainder) and expanded back over the bins that were nonzero
// in P's slice (each gets its level's count divided by their number). Both
// are normalized and smoothed (zero bins get eps = 1e-4, taken evenly from
// the nonzero ones), and the T with the smallest KL(P || Q) wins with
// threshold T = i bin widths (the upper edge of the slice, as NVIDIA's
// pytorch-quantization and MXNet take it). Levels: 256 for non-negative
// values (u8 with zero point 0), 128 when negatives occur (one sign's half);
// the range is then [max(min, -T), min(max, T)]. As in NVIDIA's entropy
// calibrator, bin 0 is given bin 1's count first: after a ReLU it holds the
// exact zeros, often half of all values, and such a spike makes the search
// favour thresholds that resolve nothing but it (measured on the
// Fashion-MNIST fixture without it: relu1 clipped at 25% of its max, int8
// top-1 89.02%).
// Batches arrive before the final maximum is known, so values go into a
// finer histogram of kKlFineBins that grows with the data: its bin width is
// doubled (pairs of bins merged, which is exact) whenever a batch exceeds
// its reach, so memory is constant and the values occupy at least half of
// it. range() merges groups of f fine bins (f the smallest that fits the
// last nonzero bin into kKlBins) into the 2048 search bins, so the values
// occupy at least 80% of them (TensorRT's exact [0, max] histogram: 100%).
inline constexpr int kKlBins = 2048;
inline constexpr int kKlFineBins = 8 * kKlBins;
class KlObserver : public Observer {
 public:
  std::string name() const override { return "kl"; }
  void observe(const float* data, int64_t count) override;
  Expected<Range> range() const override;

 private:
  std::vector<double> hist_ = std::vector<double>(kKlFineBins, 0.0);
  double width_ = 0.0;        // fine bin width; 0 until a nonzero value was seen
  int64_t zeros_before_ = 0;  // exact zeros seen while width_ was 0
  float min_ = 0.0f;
  float max_ = 0.0f;
};

// "minmax", "moving_average" (momentum 0.9), "percentile" (99.99), "kl" or
// "mse"; an error naming them otherwise.
inline const std::vector<std::string>& observer_names() {
  static const std::vector<std::string> names = {"minmax", "moving_average", "percentile", "kl", "mse"};
  return names;
}
struct ObserverOptions {
  double momentum = 0.9;       // moving_average
  double percentile = 99.99;   // percentile
};
Expected<std::unique_ptr<Observer>> make_observer(const std::string& name, const ObserverOptions& options = {});

}  // namespace compress::quant
