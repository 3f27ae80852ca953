// MinMaxObserver and the observer factory.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "compress/quant/observer.h"
#include "compress/support/threads.h"

namespace compress::quant {

namespace {

// Note [Fast finite range]
// Calibration scans every activation of every batch, so this loop is hot.
// Lanes of kLanes independent minima/maxima keep it branch-free, which the
// compiler turns into vector min/max (`v < lo ? v : lo` is exactly minps:
// a NaN `v` compares false and leaves `lo`). Infinities would win the
// comparisons, so non-finite values are only counted here, and a block that
// has any is rescanned with the scalar rule. Most blocks have none.
constexpr int64_t kLanes = 16;

FiniteRange scalar_range(const float* data, int64_t count) {
  FiniteRange r;
  for (int64_t i = 0; i < count; ++i) {
    const float v = data[i];
    if (!std::isfinite(v)) {
      ++r.skipped;
      continue;
    }
    r.min = r.finite == 0 ? v : std::min(r.min, v);
    r.max = r.finite == 0 ? v : std::max(r.max, v);
    ++r.finite;
  }
  return r;
}

FiniteRange block_range(const float* data, int64_t count) {
  const int64_t whole = count / kLanes * kLanes;
  if (whole == 0) return scalar_range(data, count);
  float lo[kLanes], hi[kLanes];
  int32_t bad[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) {
    lo[j] = std::numeric_limits<float>::max();
    hi[j] = -std::numeric_limits<float>::max();
    bad[j] = 0;
  }
  for (int64_t i = 0; i < whole; i += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      const float v = data[i + j];
      lo[j] = v < lo[j] ? v : lo[j];
      hi[j] = v > hi[j] ? v : hi[j];
      bad[j] += !(std::fabs(v) <= std::numeric_limits<float>::max());
    }
  }
  int64_t bad_total = 0;
  for (int64_t j = 0; j < kLanes; ++j) bad_total += bad[j];
  if (bad_total != 0) return scalar_range(data, count);
  FiniteRange r;
  r.min = lo[0];
  r.max = hi[0];
  for (int64_t j = 1; j < kLanes; ++j) {
    r.min = std::min(r.min, lo[j]);
    r.max = std::max(r.max, hi[j]);
  }
  r.finite = whole;
  const FiniteRange tail = scalar_range(data + whole, count - whole);
  if (tail.finite > 0) {
    r.min = std::min(r.min, tail.min);
    r.max = std::max(r.max, tail.max);
  }
  r.finite += tail.finite;
  r.skipped += tail.skipped;
  return r;
}

void merge(FiniteRange& into, const FiniteRange& part) {
  if (part.finite > 0) {
    into.min = into.finite == 0 ? part.min : std::min(into.min, part.min);
    into.max = into.finite == 0 ? part.max : std::max(into.max, part.max);
  }
  into.finite += part.finite;
  into.skipped += part.skipped;
}

}  // namespace

FiniteRange finite_range(const float* data, int64_t count) {
  // Blocks of 64 Ki values: small enough to rescan cheaply, large enough to
  // amortize the threads.
  constexpr int64_t kBlock = 1 << 16;
  const int64_t blocks = (count + kBlock - 1) / kBlock;
  std::vector<FiniteRange> parts(static_cast<size_t>(blocks));
  parallel_for(static_cast<long>(blocks), [&](long begin, long end) {
    for (long b = begin; b < end; ++b) {
      const int64_t start = b * kBlock;
      parts[static_cast<size_t>(b)] = block_range(data + start, std::min(kBlock, count - start));
    }
  });
  FiniteRange r;
  for (const FiniteRange& p : parts) merge(r, p);
  return r;
}

void MinMaxObserver::observe(const float* data, int64_t count) {
  const FiniteRange r = finite_range(data, count);
  skipped_ += r.skipped;
  if (r.finite == 0) return;
  min_ = finite_ == 0 ? r.min : std::min(min_, r.min);
  max_ = finite_ == 0 ? r.max : std::max(max_, r.max);
  finite_ += r.finite;
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
