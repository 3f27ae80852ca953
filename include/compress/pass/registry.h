// PassRegistry: creates passes by their name ("transforms.fold_batch_norm", "quant.ptq").
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compress/pass/pass.h"

namespace compress::pass {

// An explicit object rather than a global: each pass family exposes a
// register_*_passes(PassRegistry&) function and the program that wants them
// calls it, so nothing depends on static-initialization order.
class PassRegistry {
 public:
  using Factory = std::function<std::unique_ptr<Pass>()>;

  // Registering a name twice is an error (two families claiming one name).
  Status add(const std::string& name, Factory factory);
  // A new pass with default options, or an error listing the known names.
  Expected<std::unique_ptr<Pass>> create(const std::string& name) const;
  bool contains(const std::string& name) const { return factories_.count(name) != 0; }
  std::vector<std::string> names() const;

 private:
  std::map<std::string, Factory> factories_;
};

}  // namespace compress::pass
