// FlatView (optim/flat_view.h): ranges of several tensors seen as one vector, with padding.
#include "optim/flat_view.h"

#include <vector>

#include "gtest/gtest.h"

namespace sinklab {
namespace {

// Three tensors of 3, 2 and 4 elements: flat vector 10..12, 20..21, 30..33 (9 elements).
struct ThreeTensors {
  std::vector<float> a = {10, 11, 12}, b = {20, 21}, c = {30, 31, 32, 33};
  FlatView view{{Tensor(a.data(), DType::kF32, Device::kCpu, {3}),
                 Tensor(b.data(), DType::kF32, Device::kCpu, {1, 2}),
                 Tensor(c.data(), DType::kF32, Device::kCpu, {2, 2})}};
};

TEST(FlatViewTest, OffsetsArePrefixSumsOfSizes) {
  ThreeTensors t;
  EXPECT_EQ(t.view.size(), 9);
  EXPECT_EQ(t.view.offset(0), 0);
  EXPECT_EQ(t.view.offset(1), 3);
  EXPECT_EQ(t.view.offset(2), 5);
}

TEST(FlatViewTest, CopyOutCrossesTensorBoundariesAndPadsWithZeros) {
  ThreeTensors t;
  std::vector<float> out(4, -1.0f);
  t.view.CopyOut(2, 4, out.data());  // 12 | 20 21 | 30
  EXPECT_EQ(out, (std::vector<float>{12, 20, 21, 30}));
  out.assign(5, -1.0f);
  t.view.CopyOut(7, 5, out.data());  // 32 33, then 3 padding positions
  EXPECT_EQ(out, (std::vector<float>{32, 33, 0, 0, 0}));
  out.assign(2, -1.0f);
  t.view.CopyOut(12, 2, out.data());  // wholly padding
  EXPECT_EQ(out, (std::vector<float>{0, 0}));
}

TEST(FlatViewTest, CopyInWritesTheRangeAndSkipsPadding) {
  ThreeTensors t;
  const std::vector<float> in = {-1, -2, -3, -4, -5, -6};
  t.view.CopyIn(4, 6, in.data());  // positions 4..8 real, 9 padding
  EXPECT_EQ(t.a, (std::vector<float>{10, 11, 12}));
  EXPECT_EQ(t.b, (std::vector<float>{20, -1}));
  EXPECT_EQ(t.c, (std::vector<float>{-2, -3, -4, -5}));
}

TEST(FlatViewTest, ForEachPieceListsTheTensorsOfARange) {
  ThreeTensors t;
  std::vector<std::vector<int64_t>> pieces;
  t.view.ForEachPiece(1, 6, [&](size_t i, int64_t first, int64_t flat, int64_t count) {
    pieces.push_back({static_cast<int64_t>(i), first, flat, count});
  });
  EXPECT_EQ(pieces, (std::vector<std::vector<int64_t>>{{0, 1, 1, 2}, {1, 0, 3, 2}, {2, 0, 5, 1}}));
}

}  // namespace
}  // namespace sinklab
