// The bad-file suite: each hostile .cmf is a clear error naming the problem, never a crash.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "cmf_test_util.h"
#include "compress/io/cmf.h"
#include "compress/io/cmf_format.h"

using namespace compress;
using compress::test::CmfImage;
using compress::test::TempDir;
using Catch::Matchers::Contains;

namespace {

constexpr uint64_t k2to63 = uint64_t{1} << 63;
constexpr uint64_t kAllOnes = std::numeric_limits<uint64_t>::max();

std::string tiny_bytes() { return io::serialize_cmf(test::tiny_graph()).value(); }

// Every way of reading a file must reject it with the same kind of message:
// from memory, mmapped, and read into owned buffers.
void expect_rejected(const std::string& bytes, const std::string& fragment,
                     StatusCode code = StatusCode::kCorruptFile) {
  INFO("expected fragment: " << fragment);
  auto check = [&](const Expected<ir::Graph>& result, const std::string& name, const std::string& how) {
    INFO(how);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.status().code() == code);
    CHECK_THAT(result.status().message(), Contains(fragment));
    CHECK_THAT(result.status().message(), Contains(name));
  };
  check(io::parse_cmf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "bad-image"), "bad-image",
        "parse_cmf");
  TempDir dir;
  const std::string path = dir.file("bad.cmf");
  test::write_bytes(path, bytes);
  io::CmfLoadOptions mmap_opts;
  mmap_opts.use_mmap = true;
  check(io::load_cmf(path, mmap_opts), path, "load_cmf mmap");
  io::CmfLoadOptions read_opts;
  read_opts.use_mmap = false;
  check(io::load_cmf(path, read_opts), path, "load_cmf read");
}

// Patches a header field and fixes the header checksum, so the check under
// test is the one that fires.
template <typename Patch>
std::string patched(Patch&& patch) {
  CmfImage image(tiny_bytes());
  patch(image);
  image.fix_header_checksum();
  return image.bytes;
}

}  // namespace

TEST_CASE("bad cmf: the unpatched tiny file loads (baseline for the suite)") {
  const std::string bytes = tiny_bytes();
  CHECK(io::parse_cmf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()).has_value());
  CHECK(patched([](CmfImage&) {}) == bytes);
}

TEST_CASE("bad cmf: empty file and files of 1-7 bytes") {
  expect_rejected("", "file is empty");
  const std::string magic(reinterpret_cast<const char*>(io::cmf::kMagic.data()), 8);
  for (size_t n = 1; n < 8; ++n) {
    expect_rejected(magic.substr(0, n), fmt::format("file is {} bytes, too short to be a .cmf file", n));
    expect_rejected(std::string(n, 'x'), "too short");
  }
}

TEST_CASE("bad cmf: wrong magic and truncated preamble") {
  std::string bytes = tiny_bytes();
  bytes[3] = 'X';
  expect_rejected(bytes, "bad magic");
  expect_rejected("PK\x03\x04 this is a zip file, not a model", "not a .cmf file");
  const std::string good = tiny_bytes();
  expect_rejected(good.substr(0, 10), "truncated inside the 48-byte preamble");
  expect_rejected(good.substr(0, 40), "truncated inside the 48-byte preamble");
}

TEST_CASE("bad cmf: version 0 and a future version") {
  CmfImage image(tiny_bytes());
  image.set_u32("version", 0);
  expect_rejected(image.bytes, "has .cmf version 0", StatusCode::kUnsupported);
  expect_rejected(image.bytes, "this build reads versions 1 to 2", StatusCode::kUnsupported);
  image.set_u32("version", 7);
  expect_rejected(image.bytes, "has .cmf version 7 (written by a newer compress", StatusCode::kUnsupported);
  image.set_u32("version", 0xffffffffu);
  expect_rejected(image.bytes, "version 4294967295", StatusCode::kUnsupported);
}

TEST_CASE("bad cmf: preamble flags, reserved field and op set") {
  CmfImage image(tiny_bytes());
  image.set_u32("flags", 4);
  expect_rejected(image.bytes, "flags 0x4", StatusCode::kUnsupported);
  image = CmfImage(tiny_bytes());
  image.set_u64("reserved", 1);
  expect_rejected(image.bytes, "reserved preamble field");
  expect_rejected(patched([](CmfImage& i) { i.set_u32("op_set", 2); }), "op set version 2",
                  StatusCode::kUnsupported);
  expect_rejected(patched([](CmfImage& i) { i.set_u32("op_set", 0); }), "op set version 0",
                  StatusCode::kUnsupported);
}

TEST_CASE("bad cmf: header length larger than the file, and 2^64-1") {
  CmfImage image(tiny_bytes());
  image.set_u64("header_length", image.bytes.size());
  expect_rejected(image.bytes, "runs past the end of the file");
  image.set_u64("header_length", kAllOnes);
  expect_rejected(image.bytes, "header length 18446744073709551615 exceeds the 64 MiB limit");
  image.set_u64("header_length", io::cmf::kMaxHeaderLength + 1);
  expect_rejected(image.bytes, "exceeds the 64 MiB limit");
}

TEST_CASE("bad cmf: declared sizes that disagree with the file") {
  const std::string good = tiny_bytes();
  // A truncated data section.
  expect_rejected(good.substr(0, good.size() - 64), "file is truncated");
  expect_rejected(good.substr(0, good.size() - 1), "file is truncated");
  // The header cut short: the file ends inside the header.
  expect_rejected(good.substr(0, 100), "runs past the end of the file");
  expect_rejected(good + std::string(64, '\0'), "trailing bytes after the data section");
  CmfImage image(good);
  image.set_u64("data_length", image.get_u64("data_length") + 1);
  expect_rejected(image.bytes, "is not a multiple of 64");
  image.set_u64("data_length", kAllOnes - 63);
  expect_rejected(image.bytes, "file is truncated");
}

TEST_CASE("bad cmf: corrupt header bytes fail the header checksum") {
  CmfImage image(tiny_bytes());
  image.bytes[image.at("node.1.op")] ^= 0x20;
  expect_rejected(image.bytes, "header checksum mismatch");
}

TEST_CASE("bad cmf: a string length or array length of 2^63 in a tiny file") {
  expect_rejected(patched([](CmfImage& i) { i.set_u64("graph_name.len", k2to63); }),
                  "string length 9223372036854775808 exceeds the");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.0.name.len", k2to63); }),
                  "tensor #0 name: string length 9223372036854775808");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("node.0.input_count", k2to63); }),
                  "node 'fc': input count: count 9223372036854775808");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.2.quant.scale_count", k2to63); }),
                  "scale count: count 9223372036854775808");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.0.index_count", k2to63); }),
                  "index tensor count: count 9223372036854775808");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("node_count", k2to63); }),
                  "node count: count 9223372036854775808");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("output_count", k2to63); }),
                  "graph output count: count 9223372036854775808");
}

TEST_CASE("bad cmf: tensor count of -1") {
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor_count", kAllOnes); }),
                  "tensor count: count 18446744073709551615");
  // A count that fits the bytes but runs into the following sections.
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor_count", 5); }), "byte ");
}

TEST_CASE("bad cmf: shapes (negative dim, int64 overflow, rank above the maximum)") {
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.1.dim.0", static_cast<uint64_t>(int64_t{-1})); }),
                  "tensor 'b': dimension 0 is negative (-1)");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("input.0.dim.1", static_cast<uint64_t>(int64_t{-4})); }),
                  "graph input 'x': dimension 1 is negative (-4)");
  expect_rejected(patched([](CmfImage& i) {
                    i.set_u64("tensor.2.dim.0", uint64_t{1} << 62);
                    i.set_u64("tensor.2.dim.1", 4);
                  }),
                  "tensor 'qw': element count of shape [4611686018427387904,4] overflows int64");
  expect_rejected(patched([](CmfImage& i) { i.set_u8("tensor.1.rank", 9); }),
                  "tensor 'b': rank 9 exceeds the maximum rank 8");
  expect_rejected(patched([](CmfImage& i) { i.set_u8("node.0.output.0.rank", 200); }), "rank 200 exceeds");
}

TEST_CASE("bad cmf: unknown dtype, flag, format and kind codes") {
  for (uint8_t code : {uint8_t{0}, uint8_t{11}, uint8_t{255}}) {
    expect_rejected(patched([&](CmfImage& i) { i.set_u8("tensor.1.dtype", code); }),
                    fmt::format("tensor 'b': unknown dtype code {}", code));
  }
  expect_rejected(patched([](CmfImage& i) { i.set_u8("input.0.dtype", 42); }), "unknown dtype code 42");
  expect_rejected(patched([](CmfImage& i) { i.set_u8("tensor.1.flags", 0x80); }), "unknown flag bits 0x80");
  expect_rejected(patched([](CmfImage& i) { i.set_u8("tensor.0.sparse.format", 0); }), "unknown sparse format code 0");
  expect_rejected(patched([](CmfImage& i) { i.set_u8("tensor.0.sparse.format", 9); }), "unknown sparse format code 9");
  expect_rejected(patched([](CmfImage& i) { i.set_u8("tensor.2.quant.granularity", 3); }),
                  "unknown quant granularity code 3");
  expect_rejected(patched([](CmfImage& i) { i.set_u8("input.0.has_quant", 2); }), "quant flag is 2");
}

TEST_CASE("bad cmf: data offsets that overlap, leave gaps, point past the end or wrap") {
  // Data layout of the tiny file: w's row_ptr @0, w's col_idx @64, w's values
  // @128, b @192, qw @256; 320 bytes.
  const CmfImage image(tiny_bytes());
  REQUIRE(image.get_u64("tensor.0.index.0.offset") == 0);
  REQUIRE(image.get_u64("tensor.1.offset") == 192);
  REQUIRE(image.get_u64("data_length") == 320);

  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.1.offset", 128); }),
                  "tensor 'b': data at offset 128 overlaps the previous tensor data, which ends at 192");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.0.index.0.offset", 64); }),
                  "tensor 'w' index tensor 0: data at offset 64 leaves a gap of 64 bytes");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.2.offset", 384); }),
                  "tensor 'qw': data [384, 396) points past the end of the 320-byte data section");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.1.offset", kAllOnes - 7); }),
                  "tensor 'b': data offset 18446744073709551608 + length 12 wraps around 2^64");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.1.offset", 200); }), "is not a multiple of 64");
  // Bytes at the end of the data section that no tensor claims.
  expect_rejected(patched([](CmfImage& i) {
                    i.set_u64("data_length", 384);
                    i.bytes += std::string(64, '\0');
                  }),
                  "the last 64 bytes of the data section");
}

TEST_CASE("bad cmf: data length not equal to shape x dtype size") {
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.1.length", 16); }),
                  "tensor 'b': data length 16 != 12 bytes expected for 3 elements of f32 (shape x dtype)");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.1.length", 0); }), "data length 0 != 12");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.0.index.1.length", 8); }),
                  "tensor 'w' index tensor 1: data length 8 != 24");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.1.stored_count", 4); }),
                  "stored element count 4 != element count 3");
  // 2^62-1 u4 elements: a byte count that would wrap when rounded up.
  expect_rejected(patched([](CmfImage& i) {
                    i.set_u8("tensor.1.dtype", static_cast<uint8_t>(ir::DType::kU4));
                    i.set_u64("tensor.1.dim.0", (uint64_t{1} << 62) - 1);
                    i.set_u64("tensor.1.stored_count", (uint64_t{1} << 62) - 1);
                  }),
                  "do not fit in 64 bits of bytes");
}

TEST_CASE("bad cmf: a flipped byte in tensor data fails its checksum") {
  CmfImage image(tiny_bytes());
  image.bytes[image.blob_byte("tensor.1", 5)] ^= 0x01;
  expect_rejected(image.bytes, "tensor 'b': checksum mismatch in data at file bytes");
  image = CmfImage(tiny_bytes());
  image.bytes[image.blob_byte("tensor.0.index.1", 0)] ^= 0x40;
  expect_rejected(image.bytes, "tensor 'w' index tensor 1: checksum mismatch");

  // Unverified loading skips the checksum (the caller's explicit choice).
  image = CmfImage(tiny_bytes());
  image.bytes[image.blob_byte("tensor.1", 5)] ^= 0x01;
  TempDir dir;
  test::write_bytes(dir.file("m.cmf"), image.bytes);
  io::CmfLoadOptions opts;
  opts.verify_checksums = false;
  CHECK(io::load_cmf(dir.file("m.cmf"), opts).has_value());
}

TEST_CASE("bad cmf: non-zero padding in the data section") {
  CmfImage image(tiny_bytes());
  image.bytes[image.blob_byte("tensor.1", 20)] = 1;  // b is 12 bytes; 12..63 is padding
  expect_rejected(image.bytes, "padding after tensor 'b' is not zero");
}

TEST_CASE("bad cmf: zero, negative, NaN and Inf scales in quant params") {
  const float bad[] = {0.0f, -0.5f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()};
  for (float s : bad) {
    INFO("scale " << s);
    expect_rejected(patched([&](CmfImage& i) { i.set_f32("tensor.2.quant.scale.1", s); }),
                    "tensor 'qw': invalid quant params: quant params: scale[1]");
  }
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.2.quant.qmin", 5); }), "zero_point");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("tensor.2.quant.axis", 1); }),
                  "quant params do not fit the tensor");
}

TEST_CASE("bad cmf: CSR indices out of range and not increasing") {
  // w's row 0 holds columns {0, 2}; col_idx is index tensor 1 (i32).
  auto with_col = [](size_t entry, int32_t value) {
    CmfImage image(tiny_bytes());
    std::memcpy(&image.bytes[image.blob_byte("tensor.0.index.1", 4 * entry)], &value, 4);
    image.fix_blob_checksum("tensor.0.index.1");
    return image.bytes;
  };
  expect_rejected(with_col(0, 9), "tensor 'w': invalid csr layout: csr layout: column index 9 (row 0) out of range");
  expect_rejected(with_col(0, -1), "column index -1 (row 0) out of range");
  expect_rejected(with_col(1, 0), "column indices of row 0 are not strictly increasing");
  // A row pointer past the value count.
  CmfImage image(tiny_bytes());
  const int64_t big = 1000;
  std::memcpy(&image.bytes[image.blob_byte("tensor.0.index.0", 8)], &big, 8);
  image.fix_blob_checksum("tensor.0.index.0");
  expect_rejected(image.bytes, "invalid csr layout: csr layout: row_ptr[1] = 1000");
  // Index tensors of the wrong dtype.
  expect_rejected(patched([](CmfImage& i) { i.set_u8("tensor.0.index.1.dtype", static_cast<uint8_t>(ir::DType::kU8)); }),
                  "data length 24 != 6");
}

TEST_CASE("bad cmf: duplicate names, dangling references, unknown op") {
  expect_rejected(patched([](CmfImage& i) { i.set_bytes("tensor.1.name", "w"); }),
                  "duplicate tensor name 'w' (tensors #0 and #1)");
  expect_rejected(patched([](CmfImage& i) { i.set_bytes("constant.1.name", "x"); }), "duplicate value name 'x'");
  expect_rejected(patched([](CmfImage& i) { i.set_bytes("node.2.name", "fc"); }), "duplicate node name 'fc'");
  expect_rejected(patched([](CmfImage& i) { i.set_bytes("node.1.op", "relx"); }), "node 'relu': unknown op 'relx'",
                  StatusCode::kUnsupported);
  expect_rejected(patched([](CmfImage& i) { i.set_u64("constant.0.tensor", 7); }),
                  "tensor index 7 is out of range (the file has 3 tensors)");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("constant.1.tensor", 0); }), "is already used by constant");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("node.0.input.0", 4); }),
                  "input 0 refers to value #4, but only 4 values are defined before this node");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("output.1", 99); }), "refers to value #99");
  expect_rejected(patched([](CmfImage& i) { i.set_u64("input.0.name.len", 0); }), "graph input #0: empty value name");
}

TEST_CASE("bad cmf: a graph that fails the IR verifier") {
  // fc's output declared [5,3] while linear infers [2,3].
  expect_rejected(patched([](CmfImage& i) { i.set_u64("node.0.output.0.dim.0", 5); }),
                  "the stored graph is invalid");
  // An attribute the op does not have.
  expect_rejected(patched([](CmfImage& i) { i.set_u64("node.0.output.0.dim.1", 4); }), "the stored graph is invalid");
}

TEST_CASE("bad cmf: every single-byte corruption and every truncation is handled") {
  // A miniature in-suite fuzzer: with checksums off, each corrupted byte
  // reaches the structural checks. Any outcome but a crash (or, under the
  // sanitizer build, a memory error) is fine.
  const std::string good = tiny_bytes();
  io::cmf::ParseOptions no_checksums;
  no_checksums.verify_header_checksum = false;
  no_checksums.verify_data_checksums = false;
  size_t accepted = 0;
  for (size_t pos = 0; pos < good.size(); ++pos) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0xff}, uint8_t{0x80}, uint8_t{0x01}, uint8_t{0x7f}}) {
      std::string bytes = good;
      bytes[pos] = static_cast<char>(v);
      auto result = io::cmf::parse_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m", no_checksums);
      if (result.has_value()) ++accepted;
      auto checked = io::parse_cmf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m");
      if (bytes != good) CHECK_FALSE(checked.has_value());
    }
  }
  for (size_t n = 0; n < good.size(); ++n) {
    auto result = io::parse_cmf(reinterpret_cast<const uint8_t*>(good.data()), n, "m");
    CHECK_FALSE(result.has_value());
  }
  // Some corruptions land in tensor values or padding and still parse.
  CHECK(accepted > 0);
}
