#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "compress/quant/observer.h"
#include "compress/quant/scheme.h"

using namespace compress;
using namespace compress::quant;

TEST_CASE("minmax observer: range of finite values across batches, NaN/Inf skipped") {
  MinMaxObserver o;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float a[] = {3.0f, -1.0f, nan, 2.0f};
  const float b[] = {inf, 0.5f, -inf, 7.25f};
  o.observe(a, 4);
  o.observe(b, 4);
  auto r = o.range();
  REQUIRE(r.has_value());
  CHECK(r->min == -1.0f);
  CHECK(r->max == 7.25f);
  CHECK(o.skipped_count() == 3);
  CHECK(o.finite_count() == 5);
}

TEST_CASE("minmax observer: no finite value is an error, not a NaN range") {
  MinMaxObserver o;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float a[] = {nan, nan};
  o.observe(a, 2);
  CHECK_FALSE(o.range().has_value());
  CHECK_FALSE(MinMaxObserver().range().has_value());
}

TEST_CASE("percentile observer: nearest-rank percentiles") {
  // 1..100 shuffled: the 99th percentile by nearest rank is the 99th
  // smallest (index ceil(0.99*100)-1 = 98), the 1st is the smallest.
  std::vector<float> v;
  for (int i = 100; i >= 1; --i) v.push_back(static_cast<float>((i * 37) % 100 + 1));
  PercentileObserver o(99.0);
  o.observe(v.data(), 60);
  o.observe(v.data() + 60, 40);
  auto r = o.range();
  REQUIRE(r.has_value());
  CHECK(r->min == 1.0f);
  CHECK(r->max == 99.0f);
  // 100 is "the" percentile of the maximum.
  PercentileObserver all(100.0);
  all.observe(v.data(), 100);
  CHECK(all.range()->max == 100.0f);
  CHECK(all.range()->min == 1.0f);
  // One outlier among 10000 values is clipped at 99.99.
  std::vector<float> w(10000, 1.0f);
  w[1234] = 1000.0f;
  w[42] = -2.0f;
  PercentileObserver p;
  p.observe(w.data(), static_cast<int64_t>(w.size()));
  CHECK(p.range()->max == 1.0f);
  CHECK(p.range()->min == 1.0f);
  CHECK_FALSE(PercentileObserver().range().has_value());
  CHECK_FALSE(make_observer("entropy").has_value());
}

TEST_CASE("activation params: u8 asymmetric over the range widened to 0") {
  auto p = activation_params({-1.0f, 3.0f}, "x");
  REQUIRE(p.has_value());
  CHECK(p->storage() == ir::DType::kU8);
  CHECK(p->scales()[0] == 4.0f / 255.0f);
  CHECK(p->zero_points()[0] == 64);  // nearbyint(1 / (4/255)) = nearbyint(63.75)
  auto relu = activation_params({0.5f, 2.55f}, "relu");
  CHECK(relu->zero_points()[0] == 0);
  CHECK(relu->scales()[0] == static_cast<float>(2.55 / 255.0));
  // A constant zero tensor: the fallback scale, zero exact.
  auto zero = activation_params({0.0f, 0.0f}, "zero");
  REQUIRE(zero.has_value());
  CHECK(zero->scales()[0] == kFallbackScale);
  CHECK(zero->zero_points()[0] == 0);
  // Denormal-width ranges get the minimum scale, never an Inf reciprocal.
  auto tiny = activation_params({0.0f, 1e-40f}, "tiny");
  REQUIRE(tiny.has_value());
  CHECK(tiny->scales()[0] == kMinScale);
  CHECK(std::isfinite(1.0f / tiny->scales()[0]));
  CHECK_FALSE(activation_params({std::nanf(""), 1.0f}, "nan").has_value());
}

TEST_CASE("weight params: s8 symmetric per channel, zero channels get the fallback scale") {
  // Channel 0: max |w| = 2.54; channel 1: all zero (a pruned filter).
  ir::Tensor w = ir::Tensor::from_vector<float>(ir::DType::kF32, {2, 3}, {1.0f, -2.54f, 0.3f, 0.0f, 0.0f, 0.0f});
  auto p = weight_params(w, "w");
  REQUIRE(p.has_value());
  CHECK(p->granularity() == ir::QuantGranularity::kPerAxis);
  CHECK(p->axis() == 0);
  CHECK(p->qmin() == -127);
  CHECK(p->qmax() == 127);
  CHECK(p->scales()[0] == 2.54f / 127.0f);
  CHECK(p->scales()[1] == kFallbackScale);
  auto q = quantize_tensor(w, *p);
  REQUIRE(q.has_value());
  const int8_t* d = q->data<int8_t>();
  CHECK(d[0] == 50);  // 1 / 0.02
  CHECK(d[1] == -127);
  CHECK(d[2] == 15);
  CHECK(d[3] == 0);
  CHECK(d[4] == 0);
  CHECK(d[5] == 0);
  ir::Tensor bad = ir::Tensor::from_vector<float>(ir::DType::kF32, {1, 2}, {1.0f, std::nanf("")});
  CHECK_FALSE(weight_params(bad, "bad").has_value());
}

TEST_CASE("mse observer: no clipping for a uniform distribution, clips a lone outlier") {
  // Uniform on [0, 1]: clipping only adds error, so the full range wins.
  std::vector<float> u(20000);
  for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<float>(i) / static_cast<float>(u.size() - 1);
  MseObserver o;
  o.observe(u.data(), static_cast<int64_t>(u.size()));
  auto r = o.range();
  REQUIRE(r.has_value());
  CHECK(r->min == 0.0f);
  CHECK(r->max == 1.0f);
  // The same bulk plus one value at 10: clipping the outlier costs
  // (10 - hi)^2 / 20001, which only a small cut repays. Computed
  // independently (Python, same formula and candidates): the minimum is at
  // a = 0.97, hi = 9.7.
  u.push_back(10.0f);
  MseObserver clipped;
  clipped.observe(u.data(), static_cast<int64_t>(u.size()));
  auto c = clipped.range();
  REQUIRE(c.has_value());
  CHECK(c->max == Approx(9.7f));
  CHECK(c->min == 0.0f);
  CHECK(make_observer("mse").value()->name() == "mse");
}
