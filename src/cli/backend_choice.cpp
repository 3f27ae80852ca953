#include "backend_choice.h"

#include "compress/support/check.h"
#ifdef COMPRESS_HAVE_ONEDNN
#include "compress/runtime/onednn.h"
#endif

namespace compress::cli {

Expected<std::unique_ptr<runtime::Backend>> make_cli_backend(const std::string& name, const std::string& dtype) {
  COMPRESS_CHECK(dtype == "f32" || dtype == "bf16", StatusCode::kInvalidArgument, "bad --dtype '{}' (use f32 or bf16)",
                 dtype);
#ifdef COMPRESS_HAVE_ONEDNN
  if (name == "onednn") {
    runtime::OnednnOptions options;
    options.compute = dtype == "bf16" ? runtime::OnednnCompute::kBF16 : runtime::OnednnCompute::kF32;
    return runtime::make_onednn_backend(options);
  }
#endif
  COMPRESS_CHECK(dtype == "f32", StatusCode::kInvalidArgument, "--dtype {} needs --backend onednn", dtype);
  return runtime::make_backend(name);
}

}  // namespace compress::cli
