#include "core/device.h"

#include <gtest/gtest.h>

#include "core/cuda_arch.h"

namespace sinklab {
namespace {

TEST(CudaArchsTest, PlainArchitecturesRunOnTheirMajorAndThroughPtxOnNewer) {
  EXPECT_TRUE(CudaArchsRunOn("90", 9, 0));
  EXPECT_TRUE(CudaArchsRunOn("80", 8, 6));   // sm_80 code on 8.6
  EXPECT_TRUE(CudaArchsRunOn("80", 9, 0));   // compute_80 PTX, compiled by the driver
  EXPECT_TRUE(CudaArchsRunOn("90", 10, 0));  // likewise
  EXPECT_FALSE(CudaArchsRunOn("90", 8, 0));  // older GPUs never
  EXPECT_FALSE(CudaArchsRunOn("86", 8, 0));
}

TEST(CudaArchsTest, RealAndVirtualEntriesCarryCodeOrPtxOnly) {
  EXPECT_TRUE(CudaArchsRunOn("80-real", 8, 9));
  EXPECT_FALSE(CudaArchsRunOn("80-real", 9, 0));  // no PTX to compile for 9.0
  EXPECT_TRUE(CudaArchsRunOn("80-virtual", 9, 0));
  EXPECT_FALSE(CudaArchsRunOn("90-virtual", 8, 9));
}

TEST(CudaArchsTest, ArchSpecificCodeRunsOnItsOwnArchitectureOnly) {
  EXPECT_TRUE(CudaArchsRunOn("90a", 9, 0));
  EXPECT_FALSE(CudaArchsRunOn("90a", 10, 0));
  EXPECT_FALSE(CudaArchsRunOn("90a", 8, 0));
  EXPECT_TRUE(CudaArchsRunOn("100f", 10, 3));
  EXPECT_FALSE(CudaArchsRunOn("100f", 12, 0));
}

TEST(CudaArchsTest, ListsRunWhereAnyEntryRuns) {
  EXPECT_TRUE(CudaArchsRunOn("80;90a", 8, 0));
  EXPECT_TRUE(CudaArchsRunOn("80,90a", 9, 0));
  EXPECT_FALSE(CudaArchsRunOn("80-real;90a", 10, 0));
  EXPECT_TRUE(CudaArchsRunOn("80-real;90a;100", 12, 0));
}

TEST(CudaArchsTest, UnreadableListsLeaveTheDecisionToTheDriver) {
  EXPECT_TRUE(CudaArchsRunOn("native", 8, 0));
  EXPECT_TRUE(CudaArchsRunOn("all-major", 7, 5));
  EXPECT_TRUE(CudaArchsRunOn("", 9, 0));
  EXPECT_TRUE(CudaArchsRunOn("90a;sm_x", 8, 0));
}

TEST(CudaArchsTest, TheMessageNamesTheGpuItsArchitectureAndTheRebuild) {
  const std::string message = NoCudaImageMessage(1, "NVIDIA A100-SXM4-80GB", 8, 0, "90a");
  for (const char* part : {"GPU 1 (NVIDIA A100-SXM4-80GB)", "compute capability 8.0",
                           "architectures 90a", "CUDA_ARCHS=80 ./setup.sh"}) {
    EXPECT_NE(message.find(part), std::string::npos) << part << " not in: " << message;
  }
}

TEST(ResolveDeviceTest, CpuIsAlwaysTheCpu) {
  absl::StatusOr<Device> device = ResolveDevice("cpu");
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(*device, Device::kCpu);
}

TEST(ResolveDeviceTest, AutoTakesTheGpuExactlyWhenItIsUsable) {
  absl::StatusOr<Device> device = ResolveDevice("auto");
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(*device, CudaUsable().ok() ? Device::kCuda : Device::kCpu);
}

TEST(ResolveDeviceTest, CudaWithoutAUsableGpuSaysWhy) {
  const absl::Status usable = CudaUsable();
  absl::StatusOr<Device> device = ResolveDevice("cuda");
  if (usable.ok()) {
    ASSERT_TRUE(device.ok()) << device.status();
    EXPECT_EQ(*device, Device::kCuda);
    return;
  }
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(device.status().message());
  EXPECT_NE(message.find(std::string(usable.message())), std::string::npos) << message;
  EXPECT_NE(message.find("--device=cpu"), std::string::npos) << message;
}

TEST(ResolveDeviceTest, OtherValuesAreRejectedByName) {
  absl::StatusOr<Device> device = ResolveDevice("gpu");
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(device.status().message().find("'gpu'"), absl::string_view::npos);
}

}  // namespace
}  // namespace sinklab
