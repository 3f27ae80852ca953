// MovingAverageObserver: an exponential moving average of per-batch min/max.
#include <algorithm>
#include <cmath>

#include "compress/quant/observer.h"

namespace compress::quant {

void MovingAverageObserver::observe(const float* data, int64_t count) {
  bool any = false;
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < count; ++i) {
    const float v = data[i];
    if (!std::isfinite(v)) {
      ++skipped_;
      continue;
    }
    lo = any ? std::min(lo, v) : v;
    hi = any ? std::max(hi, v) : v;
    any = true;
    ++finite_;
  }
  if (!any) return;  // a batch of only non-finite values says nothing
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
