// Creating the backend named on a ctk command line (--backend, --dtype).
#pragma once

#include <memory>
#include <string>

#include "compress/runtime/backend.h"

namespace compress::cli {

// "reference" or "onednn"; dtype "f32" or "bf16" (bf16: onednn only).
Expected<std::unique_ptr<runtime::Backend>> make_cli_backend(const std::string& name, const std::string& dtype);

}  // namespace compress::cli
