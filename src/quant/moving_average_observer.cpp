// MovingAverageObserver: an exponential moving average of per-batch min/max.
#include <algorithm>
#include <cmath>

#include "compress/quant/observer.h"

namespace compress::quant {

void MovingAverageObserver::observe(const float* data, int64_t count) {
  const FiniteRange r = finite_range(data, count);
  skipped_ += r.skipped;
  finite_ += r.finite;
  if (r.finite == 0) return;  // a batch of only non-finite values says nothing
  const float lo = r.min, hi = r.max;
  if (!seen_) {
    min_ = lo;
    max_ = hi;
    seen_ = true;
  } else {
    min_ = momentum_ * min_ + (1.0 - momentum_) * lo;
    max_ = momentum_ * max_ + (1.0 - momentum_) * hi;
  }
}

Expected<Range> MovingAverageObserver::range() const {
  if (!(momentum_ >= 0.0 && momentum_ < 1.0)) {
    return invalid_argument("moving_average momentum {} must be in [0, 1)", momentum_);
  }
  if (!seen_) {
    return invalid_argument("moving_average observer saw no finite value ({} non-finite skipped)", skipped_);
  }
  return Range{static_cast<float>(min_), static_cast<float>(max_)};
}

}  // namespace compress::quant
