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

Expected<std::unique_ptr<Observer>> make_observer(const std::string& name, const ObserverOptions& options) {
  if (name == "minmax") return std::unique_ptr<Observer>(std::make_unique<MinMaxObserver>());
  if (name == "moving_average") {
    if (!(options.momentum >= 0.0 && options.momentum < 1.0)) {
      return invalid_argument("moving_average momentum {} must be in [0, 1)", options.momentum);
    }
    return std::unique_ptr<Observer>(std::make_unique<MovingAverageObserver>(options.momentum));
  }
  if (name == "percentile") return std::unique_ptr<Observer>(std::make_unique<PercentileObserver>(options.percentile));
  if (name == "kl") return std::unique_ptr<Observer>(std::make_unique<KlObserver>());
  if (name == "mse") return std::unique_ptr<Observer>(std::make_unique<MseObserver>());
  return invalid_argument("unknown observer '{}' (use minmax, moving_average, percentile, kl or mse)", name);
}

}  // namespace compress::quant
