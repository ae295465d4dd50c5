// SL_CUDA_CHECK: every CUDA runtime call is checked; a failure aborts with file:line and
// the CUDA error string (a failed CUDA call is not recoverable user input).
#ifndef SINKLAB_CORE_CUDA_CHECK_H_
#define SINKLAB_CORE_CUDA_CHECK_H_

#include <cuda_runtime.h>

#include "core/status.h"

#define SL_CUDA_CHECK(expr)                                                        \
  do {                                                                             \
    const cudaError_t _sl_err = (expr);                                            \
    if (_sl_err != cudaSuccess)                                                    \
      ::sinklab::CheckFailed(__FILE__, __LINE__, #expr, cudaGetErrorString(_sl_err)); \
  } while (0)

#endif  // SINKLAB_CORE_CUDA_CHECK_H_
