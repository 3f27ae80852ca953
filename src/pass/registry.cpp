// PassRegistry: name -> factory.
#include "compress/pass/registry.h"

#include <fmt/format.h>

namespace compress::pass {

Status PassRegistry::add(const std::string& name, Factory factory) {
  if (factories_.count(name)) return invalid_argument("pass '{}' is registered twice", name);
  factories_.emplace(name, std::move(factory));
  return Status::ok();
}

Expected<std::unique_ptr<Pass>> PassRegistry::create(const std::string& name, const PassOptions& options) const {
  auto it = factories_.find(name);
  if (it == factories_.end()) {
    return not_found("unknown pass '{}' (known: {})", name, fmt::join(names(), ", "));
  }
  COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<Pass> pass, it->second(options));
  COMPRESS_RETURN_IF_ERROR(options.finish());
  return pass;
}

std::vector<std::string> PassRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, factory] : factories_) out.push_back(name);
  return out;
}

}  // namespace compress::pass
