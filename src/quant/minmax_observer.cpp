// MinMaxObserver and the observer factory.
#include <algorithm>
#include <cmath>

#include "compress/quant/observer.h"

namespace compress::quant {

void MinMaxObserver::observe(const float* data, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float v = data[i];
    if (!std::isfinite(v)) {
      ++skipped_;
      continue;
    }
    if (finite_ == 0) {
      min_ = max_ = v;
    } else {
      min_ = std::min(min_, v);
      max_ = std::max(max_, v);
    }
    ++finite_;
  }
}

Expected<Range> MinMaxObserver::range() const {
  if (finite_ == 0) return invalid_argument("minmax observer saw no finite value ({} non-finite skipped)", skipped_);
  return Range{min_, max_};
}

Expected<std::unique_ptr<Observer>> make_observer(const std::string& name) {
  if (name == "minmax") return std::unique_ptr<Observer>(std::make_unique<MinMaxObserver>());
  if (name == "percentile") return std::unique_ptr<Observer>(std::make_unique<PercentileObserver>());
  if (name == "mse") return std::unique_ptr<Observer>(std::make_unique<MseObserver>());
  return invalid_argument("unknown observer '{}' (use minmax, percentile or mse)", name);
}

}  // namespace compress::quant
