// .cmf version 2 annotations: round trips, version-1 files with annotation constants, corrupt annotation sections.
#include <catch2/catch.hpp>

#include <cstring>
#include <limits>

#include "cmf_test_util.h"
#include "compress/io/cmf.h"
#include "compress/io/cmf_format.h"
#include "compress/ir/printer.h"

using namespace compress;
using namespace compress::ir;
using compress::test::CmfImage;
using compress::test::TempDir;
using Catch::Matchers::Contains;

namespace {

const std::string kFixtures = std::string(COMPRESS_TEST_SOURCE_DIR) + "/tests/io/fixtures/";

std::string annotated_bytes() { return io::serialize_cmf(test::annotated_graph()).value(); }

Graph parse(const std::string& bytes, const std::string& name = "image") {
  auto g = io::parse_cmf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
  if (!g) FAIL(g.status().message());
  return std::move(*g);
}

// The same check as the bad-file suite: from memory, mmapped and read.
void expect_rejected(const std::string& bytes, const std::string& fragment) {
  INFO("expected fragment: " << fragment);
  auto check = [&](const Expected<Graph>& result, const std::string& how) {
    INFO(how);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.status().code() == StatusCode::kCorruptFile);
    CHECK_THAT(result.status().message(), Contains(fragment));
  };
  check(io::parse_cmf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "bad-image"), "parse_cmf");
  TempDir dir;
  test::write_bytes(dir.file("bad.cmf"), bytes);
  for (bool mmap : {true, false}) {
    io::CmfLoadOptions opts;
    opts.use_mmap = mmap;
    check(io::load_cmf(dir.file("bad.cmf"), opts), mmap ? "load_cmf mmap" : "load_cmf read");
  }
}

template <typename Patch>
std::string patched(Patch&& patch, std::string bytes = annotated_bytes()) {
  CmfImage image(std::move(bytes));
  patch(image);
  image.fix_header_checksum();
  return image.bytes;
}

// (kind, target kind, target name, payload) of every annotation, comparable across graphs.
struct Entry {
  std::string kind;
  AnnotationTarget::Kind target;
  std::string name;
  Tensor payload;
};
std::vector<Entry> entries(const Graph& g) {
  std::vector<Entry> out;
  for (const Annotation& a : g.annotations().list()) out.push_back({a.kind, a.target.kind(), a.target.name(), a.payload});
  return out;
}

void check_same_annotations(const Graph& a, const Graph& b) {
  const auto ea = entries(a), eb = entries(b);
  REQUIRE(ea.size() == eb.size());
  for (size_t i = 0; i < ea.size(); ++i) {
    INFO(ea[i].kind << " " << ea[i].name);
    CHECK(ea[i].kind == eb[i].kind);
    CHECK(ea[i].target == eb[i].target);
    CHECK(ea[i].name == eb[i].name);
    CHECK(ea[i].payload.bitwise_equal(eb[i].payload));
  }
}

std::vector<float> floats(const Tensor* t) {
  REQUIRE(t != nullptr);
  REQUIRE(t->dtype() == DType::kF32);
  return std::vector<float>(t->data<float>(), t->data<float>() + t->numel());
}

}  // namespace

TEST_CASE("cmf v2 round trip: annotations on a node, a value and the graph, canonical bytes") {
  const Graph g = test::annotated_graph();
  const std::string bytes = io::serialize_cmf(g).value();
  const CmfImage image(bytes);
  CHECK(image.get_u64("annotation_count") == 3);
  uint32_t version = 0;
  std::memcpy(&version, bytes.data() + io::cmf::kVersionOffset, 4);
  CHECK(version == io::kCmfVersion);
  CHECK(version == 2);
  // Payloads follow every tensor in the data section (tiny's tensors end at 320).
  CHECK(image.get_u64("annotation.0.offset") == 320);

  TempDir dir;
  REQUIRE(io::save_cmf(g, dir.file("a.cmf")).is_ok());
  for (bool mmap : {true, false}) {
    io::CmfLoadOptions opts;
    opts.use_mmap = mmap;
    const Graph loaded = io::load_cmf(dir.file("a.cmf"), opts).value();
    check_same_annotations(g, loaded);
    CHECK(loaded.annotations().find("test.note", AnnotationTarget::value(*loaded.find_value("x"))) != nullptr);
    CHECK(print_graph(loaded) == print_graph(g));
    CHECK(io::serialize_cmf(loaded).value() == bytes);
  }
  // A graph without annotations writes an empty section.
  CHECK(CmfImage(io::serialize_cmf(test::tiny_graph()).value()).get_u64("annotation_count") == 0);
}

TEST_CASE("cmf v1 files still read: their importance and observed-range constants become annotations") {
  // Written by the version-1 writer (tests/io/fixtures/README.md).
  const std::string v1 = test::read_bytes(kFixtures + "v1_annotated.cmf");
  uint32_t version = 0;
  std::memcpy(&version, v1.data() + io::cmf::kVersionOffset, 4);
  REQUIRE(version == 1);
  for (bool mmap : {true, false}) {
    io::CmfLoadOptions opts;
    opts.use_mmap = mmap;
    const Graph g = io::load_cmf(kFixtures + "v1_annotated.cmf", opts).value();
    std::vector<std::string> constants;
    for (const Value* c : g.constants()) constants.push_back(c->name());
    CHECK(constants == std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight"});
    CHECK(g.annotations().size() == 4);
    const AnnotationTarget fc1 = AnnotationTarget::node(*g.find_node("fc1"));
    const AnnotationTarget fc2 = AnnotationTarget::node(*g.find_node("fc2"));
    CHECK(floats(g.annotations().find(kChannelImportanceKind, fc1)) == std::vector<float>{0.5f, 1.5f, 2.5f});
    CHECK(floats(g.annotations().find(kChannelImportanceKind, fc2)) == std::vector<float>{4.0f, 0.25f});
    CHECK(floats(g.annotations().find(kObservedRangeKind, AnnotationTarget::graph("x"))) ==
          std::vector<float>{-1.0f, 2.0f});
    CHECK(floats(g.annotations().find(kObservedRangeKind, AnnotationTarget::graph("relu"))) ==
          std::vector<float>{0.0f, 3.5f});
    // Saved again, it is a version-2 file with the same annotations.
    const std::string v2 = io::serialize_cmf(g).value();
    std::memcpy(&version, v2.data() + io::cmf::kVersionOffset, 4);
    CHECK(version == 2);
    check_same_annotations(g, parse(v2));
  }
}

TEST_CASE("cmf v1: a stored importance of a node that is not in the graph is dropped, the file still loads") {
  const Graph g = io::load_cmf(kFixtures + "v1_orphan_importance.cmf").value();
  CHECK(g.find_value("importance/gone") == nullptr);
  CHECK(g.annotations().size() == 4);
  for (const Annotation& a : g.annotations().list()) CHECK(a.target.name() != "gone");
}

TEST_CASE("cmf v1 layout has no annotation section") {
  // A version-2 image relabelled as version 1: its annotation section is
  // bytes the version-1 layout does not have.
  const std::string bytes = patched([](CmfImage& i) { i.set_u32("version", 1); }, io::serialize_cmf(test::tiny_graph()).value());
  expect_rejected(bytes, "8 unexpected bytes after the graph outputs");
}

TEST_CASE("bad cmf: corrupt annotation sections") {
  constexpr uint64_t k2to63 = uint64_t{1} << 63;
  SECTION("bad counts") {
    expect_rejected(patched([](CmfImage& i) { i.set_u64("annotation_count", k2to63); }),
                    "annotation count: count 9223372036854775808 needs at least");
    expect_rejected(patched([](CmfImage& i) { i.set_u64("annotation_count", 4); }), "annotation #3");
    expect_rejected(patched([](CmfImage& i) { i.set_u64("annotation_count", 2); }),
                    "unexpected bytes after the annotations");
    expect_rejected(patched([](CmfImage& i) { i.set_u64("annotation.1.kind.len", k2to63); }),
                    "annotation #1 kind: string length 9223372036854775808");
    expect_rejected(patched([](CmfImage& i) { i.set_u64("annotation.0.kind.len", 0); }), "annotation #0: empty kind");
  }
  SECTION("truncated inside the section") {
    // The header ends 5 bytes early, inside the last payload's checksum; the
    // cut bytes become (zero) padding, so the data section does not move.
    const std::string bytes = patched([](CmfImage& i) {
      const uint64_t length = i.get_u64("header_length");
      const size_t cut = io::cmf::kHeaderOffset + length - 5;
      REQUIRE(io::cmf::align_up(cut, io::cmf::kDataAlignment) == i.data_start);
      std::memset(&i.bytes[cut], 0, 5);
      i.set_u64("header_length", length - 5);
    });
    expect_rejected(bytes, "annotation 'test.note' of value 'x': needs 8 bytes but the header has only 3 left");
  }
  SECTION("targets that are not in the graph, unknown target codes") {
    expect_rejected(patched([](CmfImage& i) { i.set_bytes("annotation.0.target_name", "fx"); }),
                    "annotation 'prune.channel_importance' of node 'fx': the graph has no node 'fx'");
    expect_rejected(patched([](CmfImage& i) { i.set_bytes("annotation.2.target_name", "y"); }),
                    "annotation 'test.note' of value 'y': the graph has no value 'y'");
    expect_rejected(patched([](CmfImage& i) { i.set_u8("annotation.0.target", 3); }),
                    "annotation #0 ('prune.channel_importance'): unknown target code 3 (expected 0 graph, 1 node, 2 value)");
  }
  SECTION("bad payload: dtype, shape, data length, checksum") {
    for (uint8_t code : {uint8_t{0}, uint8_t{42}}) {
      expect_rejected(patched([&](CmfImage& i) { i.set_u8("annotation.0.dtype", code); }),
                      fmt::format("annotation 'prune.channel_importance' of node 'fc': unknown dtype code {}", code));
    }
    expect_rejected(patched([](CmfImage& i) { i.set_u8("annotation.1.rank", 9); }), "rank 9 exceeds the maximum rank 8");
    expect_rejected(patched([](CmfImage& i) { i.set_u64("annotation.0.length", 16); }),
                    "annotation 'prune.channel_importance' of node 'fc': data length 16 != 12 bytes expected for "
                    "shape [3] of f32");
    expect_rejected(patched([](CmfImage& i) { i.set_u64("annotation.1.offset", 320); }),
                    "annotation 'quant.observed_range' of graph key 'relu': data at offset 320 overlaps");
    CmfImage image(annotated_bytes());
    image.bytes[image.blob_byte("annotation.2", 1)] ^= 0x01;
    expect_rejected(image.bytes, "annotation 'test.note' of value 'x': checksum mismatch");
  }
  SECTION("duplicate annotations") {
    Graph g = test::tiny_graph();
    const Tensor range = Tensor::from_vector<float>(DType::kF32, {2}, {0.f, 1.f});
    REQUIRE(g.annotations().set(kObservedRangeKind, AnnotationTarget::graph("r1"), range).is_ok());
    REQUIRE(g.annotations().set(kObservedRangeKind, AnnotationTarget::graph("r2"), range).is_ok());
    expect_rejected(patched([](CmfImage& i) { i.set_bytes("annotation.1.target_name", "r1"); },
                            io::serialize_cmf(g).value()),
                    "annotation 'quant.observed_range' of graph key 'r1': duplicate annotation");
  }
}

TEST_CASE("cmf: a node target stored as a value target names a value, and is accepted as one") {
  // "fc" is both a node and its output value: the record's target code decides.
  const std::string bytes = patched([](CmfImage& i) { i.set_u8("annotation.0.target", 2); });
  const Graph g = parse(bytes);
  CHECK(g.annotations().find(kChannelImportanceKind, AnnotationTarget::value(*g.find_value("fc"))) != nullptr);
  CHECK(g.annotations().find(kChannelImportanceKind, AnnotationTarget::node(*g.find_node("fc"))) == nullptr);
}

TEST_CASE("bad cmf: every single-byte corruption and truncation of an annotated file is handled") {
  const std::string good = annotated_bytes();
  io::cmf::ParseOptions no_checksums;
  no_checksums.verify_header_checksum = false;
  no_checksums.verify_data_checksums = false;
  const size_t from = CmfImage(good).at("annotation_count");
  for (size_t pos = from; pos < good.size(); ++pos) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0xff}, uint8_t{0x80}, uint8_t{0x01}, uint8_t{0x7f}}) {
      std::string bytes = good;
      bytes[pos] = static_cast<char>(v);
      auto result = io::cmf::parse_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m", no_checksums);
      if (result.has_value()) CHECK(io::serialize_cmf(*result).has_value());
      if (bytes != good) {
        CHECK_FALSE(io::parse_cmf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m").has_value());
      }
    }
  }
  for (size_t n = 0; n < good.size(); ++n) {
    CHECK_FALSE(io::parse_cmf(reinterpret_cast<const uint8_t*>(good.data()), n, "m").has_value());
  }
}
