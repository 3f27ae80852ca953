// Test helpers for io/ (see cmf_test_util.h).
#include "cmf_test_util.h"

#include <dirent.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "compress/io/cmf_format.h"
#include "compress/ir/sparse_layout.h"

namespace compress::test {

using namespace compress::ir;

TempDir::TempDir() {
  char tmpl[] = "/tmp/compress-io-test-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  // Test folders hold only plain files (and the odd empty folder).
  for (const std::string& name : list()) {
    const std::string p = file(name);
    if (std::remove(p.c_str()) != 0) {
      const std::string cmd = "rm -rf '" + p + "'";
      (void)std::system(cmd.c_str());
    }
  }
  std::remove(path_.c_str());
}

std::vector<std::string> TempDir::list() const {
  std::vector<std::string> names;
  DIR* d = ::opendir(path_.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

Graph tiny_graph() {
  Graph g;
  g.name = "tiny";
  Value* x = g.add_input("x", ValueType{DType::kF32, {2, 4}, nullptr}).value();
  // Row 0: cols 0 and 2; row 1: col 3; row 2: cols 1, 2, 3.
  Tensor dense = Tensor::from_vector<float>(DType::kF32, {3, 4},
                                            {1.f, 0.f, 2.f, 0.f, 0.f, 0.f, 0.f, 3.f, 0.f, 4.f, 5.f, 6.f});
  Value* w = g.add_constant("w", to_csr_layout(dense).value()).value();
  Value* b = g.add_constant("b", Tensor::from_vector<float>(DType::kF32, {3}, {0.5f, -0.5f, 0.25f})).value();
  Tensor q = Tensor::from_vector<int8_t>(DType::kI8, {3, 4}, {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12});
  q = q.with_quant(
      std::make_shared<const QuantParams>(QuantParams::per_axis(DType::kI8, 0, {0.5f, 0.25f, 0.125f}, {0, 1, -1}).value()));
  Value* qw = g.add_constant("qw", q).value();
  Value* fc = g.add_node("linear", {x, w, b}, {}, "fc").value()->output();
  Value* relu = g.add_node("relu", {fc}, {}, "relu").value()->output();
  Value* dq = g.add_node("dequantize", {qw}, {}, "dq").value()->output();
  g.set_outputs({relu, dq});
  return g;
}

Graph annotated_graph() {
  Graph g = tiny_graph();
  g.name = "annotated";
  auto set = [&](const char* kind, const AnnotationTarget& target, Tensor payload) {
    const Status st = g.annotations().set(kind, target, std::move(payload));
    if (!st.is_ok()) throw std::runtime_error(st.message());
  };
  set(kChannelImportanceKind, AnnotationTarget::node(*g.find_node("fc")),
      Tensor::from_vector<float>(DType::kF32, {3}, {0.5f, 1.5f, 2.5f}));
  set(kObservedRangeKind, AnnotationTarget::graph("relu"), Tensor::from_vector<float>(DType::kF32, {2}, {0.f, 6.f}));
  set("test.note", AnnotationTarget::value(*g.find_value("x")), Tensor::from_vector<int32_t>(DType::kI32, {2}, {7, -7}));
  return g;
}

// ---- CmfImage -----------------------------------------------------------------

namespace {

class Walker {
 public:
  Walker(const std::string& bytes, std::map<std::string, size_t>* fields, size_t pos)
      : b_(bytes), fields_(fields), pos_(pos) {}

  uint64_t u(const std::string& name, size_t width) {
    if (pos_ + width > b_.size()) throw std::runtime_error("CmfImage: walked past the end at " + name);
    (*fields_)[name] = pos_;
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[pos_ + i])) << (8 * i);
    pos_ += width;
    return v;
  }
  void str(const std::string& name) {
    const uint64_t len = u(name + ".len", 8);
    (*fields_)[name] = pos_;
    pos_ += static_cast<size_t>(len);
  }
  void shape(const std::string& p) {
    const uint64_t rank = u(p + ".rank", 1);
    for (uint64_t j = 0; j < rank; ++j) u(p + ".dim." + std::to_string(j), 8);
  }
  void quant(const std::string& p) {
    u(p + ".storage", 1);
    u(p + ".granularity", 1);
    u(p + ".axis", 8);
    u(p + ".group_size", 8);
    u(p + ".qmin", 8);
    u(p + ".qmax", 8);
    const uint64_t scales = u(p + ".scale_count", 8);
    for (uint64_t k = 0; k < scales; ++k) u(p + ".scale." + std::to_string(k), 4);
    const uint64_t zps = u(p + ".zero_point_count", 8);
    for (uint64_t k = 0; k < zps; ++k) u(p + ".zero_point." + std::to_string(k), 4);
  }
  void blob(const std::string& p) {
    u(p + ".offset", 8);
    u(p + ".length", 8);
    u(p + ".checksum", 8);
  }
  void value_type(const std::string& p) {
    u(p + ".dtype", 1);
    shape(p);
    if (u(p + ".has_quant", 1)) quant(p + ".quant");
  }

  void dense_tensor(const std::string& p) {
    u(p + ".dtype", 1);
    shape(p);
    blob(p);
  }

  void header(uint32_t version) {
    u("op_set", 4);
    str("graph_name");
    const uint64_t tensors = u("tensor_count", 8);
    for (uint64_t i = 0; i < tensors; ++i) {
      const std::string p = "tensor." + std::to_string(i);
      str(p + ".name");
      u(p + ".dtype", 1);
      shape(p);
      u(p + ".stored_count", 8);
      const uint64_t flags = u(p + ".flags", 1);
      if (flags & 1) quant(p + ".quant");
      if (flags & 2) {
        u(p + ".sparse.format", 1);
        u(p + ".sparse.n", 8);
        u(p + ".sparse.m", 8);
        u(p + ".sparse.block_h", 8);
        u(p + ".sparse.block_w", 8);
        const uint64_t indices = u(p + ".index_count", 8);
        for (uint64_t k = 0; k < indices; ++k) {
          dense_tensor(p + ".index." + std::to_string(k));
        }
      }
      blob(p);
    }
    const uint64_t inputs = u("input_count", 8);
    for (uint64_t i = 0; i < inputs; ++i) {
      const std::string p = "input." + std::to_string(i);
      str(p + ".name");
      value_type(p);
    }
    const uint64_t constants = u("constant_count", 8);
    for (uint64_t i = 0; i < constants; ++i) {
      const std::string p = "constant." + std::to_string(i);
      str(p + ".name");
      u(p + ".tensor", 8);
    }
    const uint64_t nodes = u("node_count", 8);
    for (uint64_t i = 0; i < nodes; ++i) {
      const std::string p = "node." + std::to_string(i);
      str(p + ".op");
      str(p + ".name");
      const uint64_t n_in = u(p + ".input_count", 8);
      for (uint64_t j = 0; j < n_in; ++j) u(p + ".input." + std::to_string(j), 8);
      const uint64_t n_attr = u(p + ".attr_count", 8);
      for (uint64_t j = 0; j < n_attr; ++j) {
        const std::string ap = p + ".attr." + std::to_string(j);
        str(ap + ".name");
        const uint64_t kind = u(ap + ".kind", 1);
        if (kind == 0 || kind == 1) {
          u(ap + ".value", 8);
        } else if (kind == 2) {
          str(ap + ".value");
        } else {
          const uint64_t n = u(ap + ".count", 8);
          for (uint64_t k = 0; k < n; ++k) u(ap + ".value." + std::to_string(k), 8);
        }
      }
      const uint64_t n_out = u(p + ".output_count", 8);
      for (uint64_t j = 0; j < n_out; ++j) {
        const std::string op = p + ".output." + std::to_string(j);
        str(op + ".name");
        value_type(op);
      }
    }
    const uint64_t outputs = u("output_count", 8);
    for (uint64_t i = 0; i < outputs; ++i) u("output." + std::to_string(i), 8);
    if (version < 2) return;
    const uint64_t annotations = u("annotation_count", 8);
    for (uint64_t i = 0; i < annotations; ++i) {
      const std::string p = "annotation." + std::to_string(i);
      str(p + ".kind");
      u(p + ".target", 1);
      str(p + ".target_name");
      dense_tensor(p);
    }
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& b_;
  std::map<std::string, size_t>* fields_;
  size_t pos_;
};

}  // namespace

CmfImage::CmfImage(std::string image) : bytes(std::move(image)) {
  Walker preamble(bytes, &fields, 0);
  preamble.u("magic", 8);
  const uint64_t version = preamble.u("version", 4);
  preamble.u("flags", 4);
  const uint64_t header_length = preamble.u("header_length", 8);
  preamble.u("header_checksum", 8);
  preamble.u("data_length", 8);
  preamble.u("reserved", 8);
  Walker header(bytes, &fields, io::cmf::kHeaderOffset);
  header.header(static_cast<uint32_t>(version));
  if (header.pos() != io::cmf::kHeaderOffset + header_length) throw std::runtime_error("CmfImage: header length mismatch");
  data_start = io::cmf::align_up(io::cmf::kHeaderOffset + header_length, io::cmf::kDataAlignment);
}

size_t CmfImage::at(const std::string& field) const {
  auto it = fields.find(field);
  if (it == fields.end()) throw std::runtime_error("CmfImage: no field " + field);
  return it->second;
}

uint64_t CmfImage::get_u64(const std::string& field) const {
  uint64_t v = 0;
  std::memcpy(&v, bytes.data() + at(field), 8);
  return v;
}

void CmfImage::set_u8(const std::string& field, uint8_t v) { bytes[at(field)] = static_cast<char>(v); }
void CmfImage::set_u32(const std::string& field, uint32_t v) { std::memcpy(&bytes[at(field)], &v, 4); }
void CmfImage::set_u64(const std::string& field, uint64_t v) { std::memcpy(&bytes[at(field)], &v, 8); }
void CmfImage::set_f32(const std::string& field, float v) { std::memcpy(&bytes[at(field)], &v, 4); }
void CmfImage::set_bytes(const std::string& field, const std::string& v) { bytes.replace(at(field), v.size(), v); }

void CmfImage::fix_header_checksum() {
  uint64_t length = 0;
  std::memcpy(&length, bytes.data() + io::cmf::kHeaderLengthOffset, 8);
  const uint64_t sum = io::cmf::checksum64(bytes.data() + io::cmf::kHeaderOffset, static_cast<size_t>(length));
  std::memcpy(&bytes[io::cmf::kHeaderChecksumOffset], &sum, 8);
}

size_t CmfImage::blob_byte(const std::string& blob, size_t i) const {
  return static_cast<size_t>(data_start + get_u64(blob + ".offset")) + i;
}

void CmfImage::fix_blob_checksum(const std::string& blob) {
  const uint64_t sum = io::cmf::checksum64(bytes.data() + blob_byte(blob, 0), static_cast<size_t>(get_u64(blob + ".length")));
  set_u64(blob + ".checksum", sum);
  fix_header_checksum();
}

}  // namespace compress::test
