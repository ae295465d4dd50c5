// Which GPUs a build's CUDA code runs on, from CMake's CUDA architecture list (no CUDA needed:
// the rules are the CUDA binary-compatibility rules, so they are tested on any machine).
#ifndef SINKLAB_CORE_CUDA_ARCH_H_
#define SINKLAB_CORE_CUDA_ARCH_H_

#include <string>

#include "absl/strings/string_view.h"

namespace sinklab {

// Whether code built for `archs` (CMAKE_CUDA_ARCHITECTURES entries separated by ';' or ',':
// "90a", "80;90", "90-real", "86-virtual", "100f") has an image that runs on a GPU of compute
// capability major.minor. Per entry (CUDA C++ Programming Guide, "Binary Compatibility" and
// "PTX Compatibility"; CMake's CUDA_ARCHITECTURES: "XY" is sm_XY code and compute_XY PTX):
// - sm_XY code runs on X.y for y >= Y (same major);
// - compute_XY PTX is compiled by the driver for any X.Y or newer;
// - arch-specific "XYa" code and PTX run on X.Y only; family "XYf" on X.y, y >= Y.
// A list it cannot read ("native", "all", "all-major", "") counts as running: the driver
// decides then.
bool CudaArchsRunOn(absl::string_view archs, int major, int minor);

// Why a GPU cannot run this build, and how to rebuild for it.
std::string NoCudaImageMessage(int gpu, absl::string_view gpu_name, int major, int minor,
                               absl::string_view archs);

}  // namespace sinklab

#endif  // SINKLAB_CORE_CUDA_ARCH_H_
