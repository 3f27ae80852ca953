// PassOptions: typed getters, ranges, defaults, unknown keys, and messages that name the file, line and key.
#include <catch2/catch.hpp>
#include <yaml-cpp/yaml.h>

#include <cmath>

#include "compress/pass/options.h"

using namespace compress;
using compress::pass::PassOptions;
using compress::pass::Range;

namespace {

PassOptions from_yaml(const std::string& text) {
  auto o = PassOptions::from_yaml(YAML::Load(text), "r.yaml", "stage 1 (x.y)");
  REQUIRE(o.has_value());
  return *o;
}

}  // namespace

TEST_CASE("PassOptions returns defaults for absent keys and typed values for present ones", "[recipe]") {
  PassOptions o = from_yaml("ratio: 0.25\nsteps: 12\nfast: yes\nname: kl\nlayers: [a, b]\nsizes: [1, 32]\n"
                            "overrides: {conv1: 0.1, 'layer*': 0.5}");
  CHECK(o.number("ratio", 0.9, Range::half_open(0, 1)).value() == 0.25);
  CHECK(o.number("missing", 0.9).value() == 0.9);
  CHECK(o.integer("steps", 1, 1, 100).value() == 12);
  CHECK(o.boolean("fast", false).value());
  CHECK(o.string("name", "minmax", {"minmax", "kl"}).value() == "kl");
  CHECK(o.string_list("layers").value() == std::vector<std::string>{"a", "b"});
  CHECK(o.integer_list("sizes", 1).value() == std::vector<int64_t>{1, 32});
  auto m = o.number_map("overrides", Range::half_open(0, 1)).value();
  REQUIRE(m.size() == 2);
  CHECK(m[0].first == "conv1");
  CHECK(m[1] == std::pair<std::string, double>{"layer*", 0.5});
  CHECK(o.finish().is_ok());
}

TEST_CASE("PassOptions errors name the file, line, stage and key", "[recipe]") {
  PassOptions o = from_yaml("ratio: 1.5\nbits: 0\nnan: .nan\nword: abc\nlist: {a: 1}\n");
  auto ratio = o.number("ratio", 0.5, Range::half_open(0, 1));
  REQUIRE_FALSE(ratio.has_value());
  CHECK_THAT(ratio.status().message(), Catch::Contains("r.yaml:1:8") && Catch::Contains("stage 1 (x.y)") &&
                                           Catch::Contains("'ratio'") && Catch::Contains("[0, 1)"));
  auto bits = o.integer("bits", 8, 2, 8);
  REQUIRE_FALSE(bits.has_value());
  CHECK_THAT(bits.status().message(), Catch::Contains("r.yaml:2:7") && Catch::Contains("[2, 8]"));
  auto nan = o.number("nan", 0.5);
  REQUIRE_FALSE(nan.has_value());
  CHECK_THAT(nan.status().message(), Catch::Contains("'nan'") && Catch::Contains(".nan"));
  auto word = o.number("word", 0.5);
  REQUIRE_FALSE(word.has_value());
  CHECK_THAT(word.status().message(), Catch::Contains("'abc'"));
  CHECK_FALSE(o.integer("word", 1).has_value());
  CHECK_FALSE(o.boolean("word", false).has_value());
  CHECK_FALSE(o.string("word", "", {"x", "y"}).has_value());
  auto list = o.string_list("list");
  REQUIRE_FALSE(list.has_value());
  CHECK_THAT(list.status().message(), Catch::Contains("a mapping"));
}

// One location per message: the item's, not the option's as well.
TEST_CASE("PassOptions errors in one item of a list or map name that item's line once", "[recipe]") {
  PassOptions o = from_yaml("names: [a, [b]]\nsizes: [1, 99]\nratios:\n  fc1: 0.5\n  fc2: 3\n");
  const auto once = [](const std::string& message, const std::string& at) {
    INFO(message);
    CHECK_THAT(message, Catch::StartsWith(at) && Catch::Contains("stage 1 (x.y)"));
    CHECK(message.find("r.yaml:", 1) == std::string::npos);
  };
  auto names = o.string_list("names");
  REQUIRE_FALSE(names.has_value());
  once(names.status().message(), "r.yaml:1:12: stage 1 (x.y): option 'names': every item must be a string");
  auto sizes = o.integer_list("sizes", 1, 32);
  REQUIRE_FALSE(sizes.has_value());
  once(sizes.status().message(), "r.yaml:2:12: stage 1 (x.y): option 'sizes'");
  auto ratios = o.number_map("ratios", Range::half_open(0, 1));
  REQUIRE_FALSE(ratios.has_value());
  once(ratios.status().message(), "r.yaml:5:8: stage 1 (x.y): option 'ratios': entry 'fc2'");
}

TEST_CASE("PassOptions finish() rejects keys no getter asked for", "[recipe]") {
  PassOptions o = from_yaml("ratio: 0.5\nratoi: 0.7\n");
  CHECK(o.number("ratio", 0.1).value() == 0.5);
  Status s = o.finish();
  REQUIRE_FALSE(s.is_ok());
  CHECK_THAT(s.message(), Catch::Contains("r.yaml:2:8") && Catch::Contains("'ratoi'") &&
                              Catch::Contains("unknown option") && Catch::Contains("ratio"));
}

TEST_CASE("PassOptions from command-line pairs parses values as YAML scalars", "[recipe]") {
  auto o = PassOptions::from_pairs({{"ratio", "0.5"}, {"layers", "[a, b]"}}, "ctk prune");
  REQUIRE(o.has_value());
  CHECK(o->number("ratio", 0).value() == 0.5);
  CHECK(o->string_list("layers").value().size() == 2);
  auto twice = PassOptions::from_pairs({{"a", "1"}, {"a", "2"}}, "ctk prune");
  REQUIRE_FALSE(twice.has_value());
  CHECK_THAT(twice.status().message(), Catch::Contains("twice"));
  auto bad = PassOptions::from_pairs({{"a", "[1, 2"}}, "ctk prune");
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("ctk prune") && Catch::Contains("'a'"));
}

TEST_CASE("PassOptions rejects a non-mapping and duplicate keys", "[recipe]") {
  auto list = PassOptions::from_yaml(YAML::Load("[1, 2]"), "r.yaml", "stage 3 (q)");
  REQUIRE_FALSE(list.has_value());
  CHECK_THAT(list.status().message(), Catch::Contains("stage 3 (q)") && Catch::Contains("mapping"));
  auto dup = PassOptions::from_yaml(YAML::Load("a: 1\na: 2\n"), "r.yaml", "stage 1");
  REQUIRE_FALSE(dup.has_value());
  CHECK_THAT(dup.status().message(), Catch::Contains("r.yaml:2:1") && Catch::Contains("twice"));
  auto none = PassOptions::from_yaml(YAML::Node(), "r.yaml", "stage 1");
  REQUIRE(none.has_value());
  CHECK(none->finish().is_ok());
}
