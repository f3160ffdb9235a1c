#include "common/yaml_checks.h"

#include <gtest/gtest.h>

#include <chrono>

#include "common/strings.h"

namespace barge {
namespace {

// LoadYaml's one error for `text`, or "" if it loaded.
std::string LoadError(std::string_view text, const YamlLimits& limits = {}) {
  YamlDiagnostics diag("f.yaml");
  std::optional<YAML::Node> root = LoadYaml(text, diag, limits);
  EXPECT_EQ(root.has_value(), diag.ok());
  return diag.ok() ? "" : ToString(diag.ToStatus().message());
}

TEST(LoadYaml, LoadsAnOrdinaryDocumentWithAliases) {
  YamlDiagnostics diag("f.yaml");
  std::optional<YAML::Node> root =
      LoadYaml("env: &e {A: \"1\", B: \"\xc3\xa9\"}\nagain: *e\n", diag);
  ASSERT_TRUE(root) << diag.ToStatus();
  EXPECT_EQ((*root)["again"]["B"].Scalar(), "\xc3\xa9");
}

TEST(LoadYaml, CountsNodesWithAliasesExpanded) {
  YamlLimits limits{.max_nodes = 10};
  // A list and its nine scalars: ten nodes.
  EXPECT_EQ(LoadError("[1, 2, 3, 4, 5, 6, 7, 8, 9]", limits), "");
  EXPECT_EQ(LoadError("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", limits),
            "f.yaml:1:29: the document expands to more than 10 YAML nodes (counting each use of "
            "an alias)");
  // A map, two keys, a list of three (4 nodes) and an alias to it (4 more): 11.
  EXPECT_NE(LoadError("a: &x [1, 2, 3]\nb: *x\n", limits), "");
  EXPECT_EQ(LoadError("a: &x [1, 2]\nb: *x\n", limits), "");
}

TEST(LoadYaml, RefusesAnAliasBombAtOnceWhereItOverflows) {
  std::string text = "a: &a [x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    text += Cat(std::string(1, c), ": &", std::string(1, c), " [",
                Repeated(Cat("*", std::string(1, c - 1)), 9, ", "), "]\n");
  }
  auto start = std::chrono::steady_clock::now();
  std::string error = LoadError(text);
  // Unbounded, this took minutes and gigabytes; the bound leaves room for a loaded machine.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // e alone is 66,430 nodes: the third reference to it in f passes 250,000.
  EXPECT_EQ(error,
            "f.yaml:6:16: the document expands to more than 250000 YAML nodes (counting each use "
            "of an alias)");
}

TEST(LoadYaml, LimitsNestingThroughAliasesToo) {
  YamlLimits limits{.max_depth = 4};
  EXPECT_EQ(LoadError("a: [[1]]", limits), "");
  EXPECT_EQ(LoadError("a: [[[1]]]", limits), "f.yaml:1:7: nested deeper than 4 levels");
  // The anchored list is 2 levels; used two levels down it reaches 5.
  EXPECT_EQ(LoadError("a: &x [[1]]\nb: [*x]\n", limits), "f.yaml:2:5: nested deeper than 4 levels");
}

TEST(LoadYaml, LimitsAliases) {
  EXPECT_EQ(LoadError("a: &x 1\nb: [*x, *x, *x]\n", {.max_aliases = 2}),
            "f.yaml:2:13: more than 2 aliases");
}

TEST(LoadYaml, RefusesAnAliasInsideItsOwnAnchor) {
  // yaml-cpp would build a cyclic graph, and whatever walks it would recurse without end.
  EXPECT_EQ(LoadError("foreach: [&m {k: *m}]\n"),
            "f.yaml:1:18: alias *m refers to a node that contains it");
  EXPECT_EQ(LoadError("a: &outer\n  b: [1, {c: *outer}]\n"),
            "f.yaml:2:14: alias *outer refers to a node that contains it");
  // Once the anchored node has ended, later aliases are fine.
  EXPECT_EQ(LoadError("a: &m [1]\nb: *m\nc: {d: [*m]}\n"), "");
}

TEST(LoadYaml, RefusesTextThatIsNotUtf8OrHoldsNul) {
  EXPECT_EQ(LoadError("a: 1\nbb: x\xff\n"),
            "f.yaml:2:6: byte \\xff is not valid UTF-8 (barge reads YAML files as UTF-8)");
  EXPECT_EQ(LoadError("\xc3"),
            "f.yaml:1:1: byte \\xc3 is not valid UTF-8 (barge reads YAML "
            "files as UTF-8)");
  EXPECT_EQ(LoadError(std::string("a: b\0c", 6)), "f.yaml:1:5: a NUL byte in the text");
}

TEST(LoadYaml, RefusesAScalarThatEscapesANul) {
  for (const char* escape : {"\\0", "\\x00", "\\u0000"}) {
    EXPECT_EQ(LoadError(Cat("a:\n  - \"x", escape, "y\"\n")),
              "f.yaml:2:5: \"x\\x00y\" holds a NUL byte, which no command, file name or "
              "environment variable can carry")
        << escape;
  }
}

TEST(LoadYaml, ReportsMalformedYamlWithItsLocation) {
  EXPECT_EQ(LoadError("a: [1, 2\nb: 3\n").rfind("f.yaml:", 0), 0u);
  EXPECT_NE(LoadError("a: [1, 2\nb: 3\n").find("malformed YAML"), std::string::npos);
  EXPECT_NE(LoadError("a: *nowhere\n").find("malformed YAML"), std::string::npos);
}

}  // namespace
}  // namespace barge
