#include "spec/template.h"

#include <gtest/gtest.h>

namespace barge {
namespace {

TEST(Template, SubstitutesAndQuotesForTheShell) {
  std::map<std::string, std::string> params = {{"day", "2026-01-01"}};
  nlohmann::json item = "a file; $(rm -rf /) 'quoted' -x";
  TemplateValues v{&params, &item, 7};
  EXPECT_EQ(RenderTemplate("cp {item} out/{index}-{params.day}", v, true),
            "cp 'a file; $(rm -rf /) '\\''quoted'\\'' -x' out/'7'-'2026-01-01'");
  EXPECT_EQ(RenderTemplate("{item}", v, false), "a file; $(rm -rf /) 'quoted' -x");
}

TEST(Template, ItemKeysAndJson) {
  nlohmann::json item = {{"name", "ada"}, {"n", "3"}};
  TemplateValues v{nullptr, &item, 0};
  EXPECT_EQ(RenderTemplate("{item.name}:{item.n}", v, false), "ada:3");
  EXPECT_EQ(RenderTemplate("{item}", v, false), R"({"n":"3","name":"ada"})");
}

TEST(Template, LeavesOtherBracesAlone) {
  TemplateValues v{nullptr, nullptr, 1};
  EXPECT_EQ(RenderTemplate("awk '{print $1}' ${X} {index}", v, false), "awk '{print $1}' ${X} 1");
  EXPECT_EQ(FindPlaceholders("{params.} {item.} {nope} {index}").size(), 1u);
}

}  // namespace
}  // namespace barge
