// Resource limits on declared sizes (see limits.h).
#include "compress/support/limits.h"

#include <fmt/format.h>

#include <array>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>

#include "compress/support/logging.h"

namespace compress {
namespace {

constexpr uint64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;

constexpr std::array<LimitInfo, 4> kLimits = {{
    {Limit::kRecipeBytes, "COMPRESS_MAX_RECIPE_BYTES", 16 * kMiB, "recipe file"},
    {Limit::kDatasetBytes, "COMPRESS_MAX_DATASET_BYTES", 8 * kGiB, "dataset in memory"},
    {Limit::kNpyBytes, "COMPRESS_MAX_NPY_BYTES", 8 * kGiB, ".npy file"},
    {Limit::kModelBytes, "COMPRESS_MAX_MODEL_BYTES", 16 * kGiB, "model file"},
}};

std::string human_bytes(uint64_t bytes) {
  if (bytes >= kGiB) return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / static_cast<double>(kGiB));
  if (bytes >= kMiB) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / static_cast<double>(kMiB));
  if (bytes >= kKiB) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / static_cast<double>(kKiB));
  return fmt::format("{} bytes", bytes);
}

}  // namespace

bool parse_byte_size(std::string_view text, uint64_t* bytes) {
  if (text.empty()) return false;
  uint64_t multiplier = 1;
  switch (text.back()) {
    case 'K': case 'k': multiplier = kKiB; break;
    case 'M': case 'm': multiplier = kMiB; break;
    case 'G': case 'g': multiplier = kGiB; break;
    case 'T': case 't': multiplier = kGiB * 1024; break;
    default: break;
  }
  if (multiplier != 1) text.remove_suffix(1);
  if (text.empty()) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return false;
    value = value * 10 + digit;
  }
  if (value > UINT64_MAX / multiplier) return false;
  *bytes = value * multiplier;
  return true;
}

const LimitInfo& limit_info(Limit limit) {
  for (const LimitInfo& info : kLimits) {
    if (info.limit == limit) return info;
  }
  return kLimits[0];  // not reached: every Limit has a row
}

uint64_t limit_bytes(Limit limit) {
  const LimitInfo& info = limit_info(limit);
  const char* env = std::getenv(std::string(info.env).c_str());
  if (env == nullptr || *env == '\0') return info.default_bytes;
  uint64_t bytes = 0;
  if (parse_byte_size(env, &bytes)) return bytes;
  static std::mutex mutex;
  static std::set<Limit> warned;
  std::lock_guard<std::mutex> lock(mutex);
  if (warned.insert(limit).second) {
    log_warning("{}='{}' is not a byte count (e.g. 64G); using the default {}", info.env, env,
                human_bytes(info.default_bytes));
  }
  return info.default_bytes;
}

Status check_limit(Limit limit, uint64_t bytes, std::string_view where) {
  const uint64_t max = limit_bytes(limit);
  if (bytes <= max) return Status::ok();
  const LimitInfo& info = limit_info(limit);
  return Status(StatusCode::kResourceExhausted,
                fmt::format("{}: needs {} ({} bytes), more than the {} limit of {}; if the file is what you meant to "
                            "load, raise the limit with {}=BYTES (e.g. {}G)",
                            where, human_bytes(bytes), bytes, info.what, human_bytes(max), info.env,
                            max / kGiB * 2 + 1));
}

}  // namespace compress
