// Picks the kernel implementation for a device.
#ifndef SINKLAB_LAUNCH_BACKEND_FACTORY_H_
#define SINKLAB_LAUNCH_BACKEND_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/device.h"
#include "layers/backend.h"

namespace sinklab {

// The CPU reference backend, or the CUDA backend (Unimplemented until it is built).
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(Device device);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_BACKEND_FACTORY_H_
