// Criterion names, magnitude scores and applying a mask.
#include "compress/prune/criteria.h"

#include <cmath>

namespace compress::prune {

Expected<Criterion> parse_criterion(const std::string& name) {
  if (name == "magnitude") return Criterion::kMagnitude;
  if (name == "wanda") return Criterion::kWanda;
  if (name == "sparsegpt") return Criterion::kSparseGpt;
  return invalid_argument("unknown pruning criterion '{}' (use magnitude, wanda or sparsegpt)", name);
}

const char* criterion_name(Criterion c) {
  switch (c) {
    case Criterion::kMagnitude:
      return "magnitude";
    case Criterion::kWanda:
      return "wanda";
    case Criterion::kSparseGpt:
      return "sparsegpt";
  }
  return "?";
}

std::vector<float> magnitude_scores(const std::vector<float>& w) {
  std::vector<float> s(w.size());
  for (size_t i = 0; i < w.size(); ++i) s[i] = std::fabs(w[i]);
  return s;
}

int64_t apply_mask(std::vector<float>& w, const std::vector<uint8_t>& mask) {
  int64_t pruned = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    if (mask[i] != 0) {
      w[i] = 0.0f;
      ++pruned;
    }
  }
  return pruned;
}

}  // namespace compress::prune
