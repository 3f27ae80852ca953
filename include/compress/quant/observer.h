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

// "minmax" or "percentile" (99.99); an error naming both otherwise.
Expected<std::unique_ptr<Observer>> make_observer(const std::string& name);

}  // namespace compress::quant
