// The digits example end to end: the data set loads and splits as documented,
// and a shortened training run on the reference interpreter lowers the loss
// and classifies held-out images.
#include "examples/mlp_digits/Digits.h"
#include "examples/mlp_digits/DigitsTraining.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <set>

namespace kiln::examples {
namespace {

const DigitsDataset &digits() {
  static const DigitsDataset data = loadDigits(defaultDigitsPath());
  return data;
}

double meanOf(const std::vector<double> &v, size_t first, size_t count) {
  return std::accumulate(v.begin() + long(first), v.begin() + long(first + count), 0.0) /
         double(count);
}

TEST(Digits, LoadsScaledPixelsAndLabels) {
  const DigitsDataset &data = digits();
  ASSERT_EQ(data.size(), 1797);
  ASSERT_EQ(data.pixels.size(), size_t(1797 * 64));
  // The first row of the file: 0,0,5,13,9,1,0,0,... label 0.
  EXPECT_EQ(data.pixels[2], 5.0f / 16.0f);
  EXPECT_EQ(data.pixels[3], 13.0f / 16.0f);
  EXPECT_EQ(data.labels[0], 0);
  EXPECT_EQ(data.labels[1796], 8);
  for (float p : data.pixels)
    ASSERT_TRUE(p >= 0.0f && p <= 1.0f) << p;
  EXPECT_EQ(*std::max_element(data.pixels.begin(), data.pixels.end()), 1.0f);
  std::vector<int> perClass(10);
  for (int32_t label : data.labels)
    ++perClass.at(size_t(label));
  for (int count : perClass)
    EXPECT_GE(count, 170);
}

TEST(Digits, SplitIsSeededAndDisjoint) {
  DigitsSplit a = splitDigits(digits(), 360, 0), b = splitDigits(digits(), 360, 0);
  DigitsSplit c = splitDigits(digits(), 360, 1);
  ASSERT_EQ(a.train.size(), 1437);
  ASSERT_EQ(a.test.size(), 360);
  EXPECT_EQ(a.test.pixels, b.test.pixels);
  EXPECT_EQ(a.train.labels, b.train.labels);
  EXPECT_NE(a.test.pixels, c.test.pixels);
  // Every image lands in exactly one part (compared as whole rows of pixels and label).
  auto rowsOf = [](const DigitsDataset &d) {
    std::multiset<std::vector<float>> rows;
    for (int64_t i = 0; i < d.size(); ++i) {
      std::vector<float> row(d.pixels.begin() + i * 64, d.pixels.begin() + (i + 1) * 64);
      row.push_back(float(d.labels[size_t(i)]));
      rows.insert(row);
    }
    return rows;
  };
  std::multiset<std::vector<float>> all = rowsOf(digits()), parts = rowsOf(a.train);
  for (const auto &row : rowsOf(a.test))
    parts.insert(row);
  EXPECT_EQ(all, parts);
}

TEST(Digits, ShuffleIsAPermutation) {
  std::vector<int64_t> order = shuffledIndices(100, 42);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i)
    EXPECT_EQ(sorted[size_t(i)], i);
  EXPECT_NE(order, sorted);
  EXPECT_EQ(order, shuffledIndices(100, 42));
}

TEST(Digits, MalformedRowIsReportedWithItsLine) {
  std::string path = testing::TempDir() + "kiln_digits_bad.csv";
  {
    std::ofstream out(path);
    std::string good;
    for (int i = 0; i < 64; ++i)
      good += "3,";
    out << good << "7\n" << good << "11\n";
  }
  try {
    loadDigits(path);
    ADD_FAILURE() << "a label of 11 was accepted";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), path + ":2: error: label 11 is outside 0..9");
  }
  std::remove(path.c_str());
}

TEST(Digits, TrainingLowersTheLossAndGeneralizes) {
  DigitsSplit data = splitDigits(digits(), 360, 0);
  DigitsTrainingOptions options;
  options.steps = 300;
  options.seed = 3;
  DigitsTrainingResult result = trainDigitsMlp(data, options);
  ASSERT_EQ(result.losses.size(), 300u);
  double first = meanOf(result.losses, 0, 50), last = meanOf(result.losses, 250, 50);
  EXPECT_GT(first, 0.8); // untrained: near ln(10) = 2.3 at the start
  EXPECT_LT(last, 0.25 * first) << "first 50 steps " << first << ", last 50 " << last;
  EXPECT_GT(result.testAccuracy, 0.90);
  EXPECT_LT(result.testLoss, 0.5);
}

TEST(Digits, TrainingIsDeterministicForASeed) {
  DigitsSplit data = splitDigits(digits(), 360, 0);
  DigitsTrainingOptions options;
  options.steps = 30;
  options.optimizer = OptimizerKind::Momentum;
  options.learningRate = defaultDigitsLearningRate(OptimizerKind::Momentum);
  DigitsTrainingResult a = trainDigitsMlp(data, options), b = trainDigitsMlp(data, options);
  EXPECT_EQ(a.losses, b.losses);
  EXPECT_EQ(a.testAccuracy, b.testAccuracy);
  options.seed = 1;
  EXPECT_NE(trainDigitsMlp(data, options).losses, a.losses);
}

} // namespace
} // namespace kiln::examples
