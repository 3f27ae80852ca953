// PassRegistry: creates passes by their name ("transforms.fold_batch_norm", "quant.ptq").
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "compress/pass/options.h"
#include "compress/pass/pass.h"

namespace compress::pass {

// An explicit object rather than a global: each pass family exposes a
// register_*_passes(PassRegistry&) function and the program that wants them
// calls it, so nothing depends on static-initialization order.
class PassRegistry {
 public:
  // A factory reads every option it knows from PassOptions (Note [Pass
  // options]) and returns the configured pass, or the first bad option.
  using Factory = std::function<Expected<std::unique_ptr<Pass>>(const PassOptions&)>;

  // Registering a name twice is an error (two families claiming one name).
  Status add(const std::string& name, Factory factory);
  // A new pass configured from `options`; an unknown name is an error listing
  // the known names, an option the pass does not read is an error naming it.
  Expected<std::unique_ptr<Pass>> create(const std::string& name, const PassOptions& options) const;
  // A new pass with default options.
  Expected<std::unique_ptr<Pass>> create(const std::string& name) const { return create(name, PassOptions()); }
  // Registers pass type P: with `static Expected<P::Options>
  // parse_options(const PassOptions&)` when P has options, else P().
  template <typename P>
  Status add(const std::string& name) {
    return add(name, [](const PassOptions& options) -> Expected<std::unique_ptr<Pass>> {
      if constexpr (HasParseOptions<P>::value) {
        COMPRESS_ASSIGN_OR_RETURN(typename P::Options parsed, P::parse_options(options));
        return std::unique_ptr<Pass>(std::make_unique<P>(std::move(parsed)));
      } else {
        (void)options;
        return std::unique_ptr<Pass>(std::make_unique<P>());
      }
    });
  }
  bool contains(const std::string& name) const { return factories_.count(name) != 0; }
  std::vector<std::string> names() const;

 private:
  template <typename P, typename = void>
  struct HasParseOptions : std::false_type {};
  template <typename P>
  struct HasParseOptions<P, std::void_t<decltype(P::parse_options(std::declval<const PassOptions&>()))>>
      : std::true_type {};

  std::map<std::string, Factory> factories_;
};

}  // namespace compress::pass
