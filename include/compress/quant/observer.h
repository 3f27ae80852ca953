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

// "minmax", "percentile" (99.99) or "mse"; an error naming them otherwise.
Expected<std::unique_ptr<Observer>> make_observer(const std::string& name);

}  // namespace compress::quant
