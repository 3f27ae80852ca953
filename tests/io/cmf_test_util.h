// Test helpers for io/: temp folders, sample graphs, and a field map for patching .cmf bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compress/io/cmf.h"
#include "compress/ir/graph.h"

namespace compress::test {

// A fresh folder under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> list() const;  // entry names, sorted

 private:
  std::string path_;
};

std::string read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::string& bytes);

// x[2,4] -> linear(w: f32 [3,4] in CSR, b: f32 [3]) -> relu, plus a
// dequantize of an i8 per-axis quantized constant: every section of the
// format in a file of about a kilobyte.
ir::Graph tiny_graph();
// tiny_graph with one annotation per target kind: channel importance of node
// fc (f32 [3]), a "test.note" on value x (i32 [2]), an observed range under
// graph key "relu" (f32 [2]), in .cmf order.
ir::Graph annotated_graph();

// An independent walker over a .cmf image (version 1 or 2) that records the
// byte offset of every header field by a dotted name ("tensor.1.offset",
// "node.0.op.len", "tensor.0.quant.scale.2", "tensor.0.index.1.checksum",
// "annotation.0.target_name"), so tests can patch exactly one field of a
// valid file. It follows docs/cmf-format.md, not the reader's code.
class CmfImage {
 public:
  explicit CmfImage(std::string bytes);

  std::string bytes;
  std::map<std::string, size_t> fields;
  uint64_t data_start = 0;

  size_t at(const std::string& field) const;
  uint64_t get_u64(const std::string& field) const;
  void set_u8(const std::string& field, uint8_t v);
  void set_u32(const std::string& field, uint32_t v);
  void set_u64(const std::string& field, uint64_t v);
  void set_f32(const std::string& field, float v);
  void set_bytes(const std::string& field, const std::string& v);  // overwrite in place
  // Recomputes the header checksum after header patches (so that the check
  // under test is reached, not the checksum).
  void fix_header_checksum();
  // Absolute file offset of byte `i` of a blob ("tensor.0" or "tensor.0.index.1").
  size_t blob_byte(const std::string& blob, size_t i) const;
  // Recomputes a blob's checksum after its data was patched.
  void fix_blob_checksum(const std::string& blob);
};

}  // namespace compress::test
