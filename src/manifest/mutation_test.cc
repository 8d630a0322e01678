// Mutated manifests: the parser never throws or crashes, every diagnostic has a position in
// the file, and whatever it accepts prints and reads back to the same manifest.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/random.h"
#include "manifest/parser.h"

namespace hafab::manifest {
namespace {

std::string ReadSource(const std::string& relative) {
  std::ifstream in(std::string(HAFAB_SOURCE_DIR) + "/" + relative);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// One random edit: delete, duplicate or swap lines, or replace, insert or delete a character.
std::string Mutate(std::string text, Random& rnd) {
  static constexpr char kAlphabet[] = " :-[]{}#\"'\n\t0123456789abcxyz/.,&*!|>";
  if (text.empty()) return text;
  size_t at = rnd.Uniform(text.size());
  switch (rnd.Uniform(5)) {
    case 0:
      text[at] = kAlphabet[rnd.Uniform(sizeof(kAlphabet) - 1)];
      break;
    case 1:
      text.insert(at, 1, kAlphabet[rnd.Uniform(sizeof(kAlphabet) - 1)]);
      break;
    case 2:
      text.erase(at, 1);
      break;
    default: {  // a whole line: delete it or copy it elsewhere
      size_t begin = text.rfind('\n', at);
      begin = begin == std::string::npos ? 0 : begin + 1;
      size_t end = text.find('\n', at);
      end = end == std::string::npos ? text.size() : end + 1;
      std::string line = text.substr(begin, end - begin);
      text.erase(begin, end - begin);
      if (rnd.OneIn(0.5) && !text.empty()) text.insert(rnd.Uniform(text.size()), line);
      break;
    }
  }
  return text;
}

TEST(MutationTest, ParserIsTotalAndAcceptedManifestsRoundTrip) {
  const std::string sources[] = {ReadSource("examples/quickstart.yaml"),
                                 ReadSource("src/manifest/testdata/maximal.yaml")};
  Random rnd(20261123);
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string text = sources[i % 2];
    int edits = 1 + static_cast<int>(rnd.Uniform(3));
    for (int e = 0; e < edits; ++e) text = Mutate(text, rnd);
    int lines = 1 + static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    ParseOutcome out = ParseManifest(text, "m.yaml");
    for (const Diagnostic& d : out.diagnostics) {
      ASSERT_GE(d.pos.line, 1) << d.ToString() << "\nseed 20261123 case " << i << "\n" << text;
      ASSERT_LE(d.pos.line, lines + 1) << d.ToString() << "\n" << text;
      ASSERT_FALSE(d.message.empty());
    }
    ASSERT_EQ(out.ok(), out.manifest.has_value());
    if (!out.ok()) {
      ++rejected;
      continue;
    }
    ++accepted;
    std::string printed = PrintManifest(*out.manifest);
    ParseOutcome again = ParseManifest(printed, "printed.yaml");
    ASSERT_TRUE(again.ok()) << "case " << i << "\n" << text << "\nprinted:\n" << printed;
    ASSERT_TRUE(*again.manifest == *out.manifest) << "case " << i << "\n" << text;
  }
  // Both outcomes must be exercised, or the test proves little.
  EXPECT_GT(accepted, 50);
  EXPECT_GT(rejected, 50);
  std::cout << "accepted " << accepted << ", rejected " << rejected << "\n";
}

}  // namespace
}  // namespace hafab::manifest
