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
  Expected<std::unique_ptr<Backend>> (*make)(const BackendOptions&);
};

Expected<std::unique_ptr<Backend>> make_reference(const BackendOptions& options) {
  // The reference backend computes in f32 (and f64 where its kernels say so):
  // it is what the others are checked against.
  if (options.compute != "f32") {
    return invalid_argument("backend 'reference' computes in f32 only, not '{}' (bf16 needs the onednn backend)",
                            options.compute);
  }
  return make_reference_backend();
}

#ifdef COMPRESS_HAVE_ONEDNN
Expected<std::unique_ptr<Backend>> make_onednn(const BackendOptions& options) {
  OnednnOptions onednn;
  if (options.compute == "bf16") {
    // Said when the backend is made, not only at its first compile.
    COMPRESS_RETURN_IF_ERROR(onednn_compute_available(OnednnCompute::kBF16).with_context("backend 'onednn'"));
    onednn.compute = OnednnCompute::kBF16;
  } else if (options.compute != "f32") {
    return invalid_argument("backend 'onednn': unknown compute type '{}' (f32 or bf16)", options.compute);
  }
  onednn.threads = options.threads;
  return make_onednn_backend(onednn);
}
#endif

// Later backends (cuda) add a line here, guarded by their build option.
const BackendFactory kBackends[] = {
    {"reference", make_reference},
#ifdef COMPRESS_HAVE_ONEDNN
    {"onednn", make_onednn},
#endif
};

}  // namespace

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (const BackendFactory& f : kBackends) names.emplace_back(f.name);
  return names;
}

Expected<std::unique_ptr<Backend>> make_backend(std::string_view name, const BackendOptions& options) {
  if (options.threads < 0) return invalid_argument("backend '{}': threads must be 0 or more, not {}", name, options.threads);
  for (const BackendFactory& f : kBackends) {
    if (name == f.name) return f.make(options);
  }
  std::string known;
  for (const std::string& n : available_backends()) known += (known.empty() ? "" : ", ") + n;
  return not_found("unknown backend '{}' (available: {})", name, known);
}

}  // namespace compress::runtime
