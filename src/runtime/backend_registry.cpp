// make_backend(): the list of backends compiled into this build, by name.
#include "compress/runtime/backend.h"
#include "compress/runtime/reference.h"
#ifdef COMPRESS_HAVE_ONEDNN
#include "compress/runtime/onednn.h"
#endif

namespace compress::runtime {
namespace {

struct BackendFactory {
  const char* name;
  std::unique_ptr<Backend> (*make)();
};

#ifdef COMPRESS_HAVE_ONEDNN
// Default options: f32, compress::num_threads() threads.
std::unique_ptr<Backend> make_default_onednn_backend() { return make_onednn_backend(); }
#endif

// Later backends (cuda) add a line here, guarded by their build option.
const BackendFactory kBackends[] = {
    {"reference", make_reference_backend},
#ifdef COMPRESS_HAVE_ONEDNN
    {"onednn", make_default_onednn_backend},
#endif
};

}  // namespace

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (const BackendFactory& f : kBackends) names.emplace_back(f.name);
  return names;
}

Expected<std::unique_ptr<Backend>> make_backend(std::string_view name) {
  for (const BackendFactory& f : kBackends) {
    if (name == f.name) return f.make();
  }
  std::string known;
  for (const std::string& n : available_backends()) known += (known.empty() ? "" : ", ") + n;
  return not_found("unknown backend '{}' (available: {})", name, known);
}

}  // namespace compress::runtime
