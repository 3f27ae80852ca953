// The .cmf container: safe reader (every file is hostile) and atomic writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::io {

// The version save_cmf writes. Version 2 added the annotation section
// (Note [Annotations]); version 1 files are still read, their annotation
// constants turned into annotations (docs/cmf-format.md, "Version 1").
inline constexpr uint32_t kCmfVersion = 2;
inline constexpr uint32_t kCmfOldestReadableVersion = 1;

struct CmfLoadOptions {
  // Map tensor data from the file instead of copying it (pages are
  // copy-on-write: writes to a tensor never reach the file).
  bool use_mmap = true;
  // Per-tensor checksums; leave on unless the file was just verified.
  bool verify_checksums = true;
};

// Reads and validates a .cmf file, then runs the IR verifier on the graph.
Expected<ir::Graph> load_cmf(const std::string& path, const CmfLoadOptions& options = {});
// Parses an in-memory image (the fuzzer's entry point); tensors are copied.
Expected<ir::Graph> parse_cmf(const uint8_t* data, size_t size, const std::string& source_name = "<memory>");
// Serializes the graph (which must verify) and writes it atomically.
Status save_cmf(const ir::Graph& graph, const std::string& path);
// The bytes save_cmf would write.
Expected<std::string> serialize_cmf(const ir::Graph& graph);

}  // namespace compress::io
