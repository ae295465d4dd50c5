// CudnnGraph: a small builder over cuDNN's backend graph API (cudnnBackendCreateDescriptor /
// SetAttribute / Finalize): 4-d tensors, pointwise, matmul, reduction and reshape operations,
// the operation graph, cuDNN's heuristics and the execution plan. Used by CudnnAttention
// (cudnn_attention.h); no cudnn_frontend.
//
// Errors are sticky: after the first failing call every call is a no-op, and error() names
// the failing step with cuDNN's message, so a caller builds the whole graph and checks ok()
// once. The builder owns every descriptor it creates (the plan's included) until destroyed.
#ifndef SINKLAB_LAYERS_CUDA_CUDNN_GRAPH_H_
#define SINKLAB_LAYERS_CUDA_CUDNN_GRAPH_H_

#if SINKLAB_WITH_CUDNN

#include <cudnn.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

// A cuDNN call whose failure is not recoverable is checked: a failure aborts with file:line,
// cuDNN's status string and its last error message. (Plan building and execution failures
// are recoverable in CudnnAttention: the shape falls back to sinklab's kernels.)
#define SL_CUDNN_CHECK(expr)                                                                       \
  do {                                                                                             \
    const cudnnStatus_t _sl_status = (expr);                                                       \
    if (_sl_status != CUDNN_STATUS_SUCCESS) {                                                      \
      ::sinklab::CheckFailed(__FILE__, __LINE__, #expr, ::sinklab::CudnnErrorMessage(_sl_status)); \
    }                                                                                              \
  } while (0)

namespace sinklab {

using CudnnDims = std::array<int64_t, 4>;

// cuDNN's name of `status` and, when it has one, its last error message.
std::string CudnnErrorMessage(cudnnStatus_t status);

class CudnnGraph {
 public:
  explicit CudnnGraph(cudnnHandle_t handle) : handle_(handle) {}
  ~CudnnGraph();
  CudnnGraph(const CudnnGraph&) = delete;
  CudnnGraph& operator=(const CudnnGraph&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // A non-virtual tensor of the variant pack, 16-byte aligned (`name` only for errors).
  cudnnBackendDescriptor_t PackTensor(
      int64_t uid, cudnnDataType_t dtype, const CudnnDims& dims, const CudnnDims& strides,
      const char* name, cudnnBackendTensorReordering_t reordering = CUDNN_TENSOR_REORDERING_NONE) {
    return MakeTensor(uid, dtype, dims, strides, name, /*is_virtual=*/false, /*by_value=*/false,
                      reordering);
  }
  // A by-value fp32 scalar [1, 1, 1, 1]: its variant-pack pointer is a host float.
  cudnnBackendDescriptor_t Scalar(int64_t uid, const char* name) {
    const CudnnDims ones{1, 1, 1, 1};
    return MakeTensor(uid, CUDNN_DATA_FLOAT, ones, ones, name, /*is_virtual=*/false,
                      /*by_value=*/true);
  }
  // An intermediate the fused engine keeps on chip (uids from 1000 up).
  cudnnBackendDescriptor_t Virtual(cudnnDataType_t dtype, const CudnnDims& dims,
                                   const CudnnDims& strides, const char* name) {
    return MakeTensor(next_virtual_++, dtype, dims, strides, name, /*is_virtual=*/true,
                      /*by_value=*/false);
  }

  // y = mode(x[, b]) elementwise, computed in `precision`; t: BINARY_SELECT's predicate
  // (y = t ? x : b); axis: GEN_INDEX's.
  void Pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t precision, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y, const char* name,
                 cudnnBackendDescriptor_t t = nullptr, int64_t axis = -1);
  // c = a @ b over the last two dims, batched over the first two (b's heads broadcast to a's
  // when fewer), fp32 accumulation.
  void Matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c,
              const char* name);
  // y = reduce(x) over the dims where y is smaller, in fp32.
  void Reduction(cudnnReduceTensorOp_t reduce, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t y, const char* name);
  // y = x seen with y's dims and strides (a transpose when only strides move).
  void Reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y, const char* name);

  // Finalizes the graph of the operations added, asks cuDNN's heuristics (mode A) for engine
  // configs and returns the plan of the first that finalizes, with its workspace bytes in
  // *workspace; nullptr (and error()) when the graph, the heuristics or every config fail.
  cudnnBackendDescriptor_t BuildPlan(int64_t* workspace);

 private:
  cudnnBackendDescriptor_t MakeTensor(
      int64_t uid, cudnnDataType_t dtype, const CudnnDims& dims, const CudnnDims& strides,
      const char* name, bool is_virtual, bool by_value,
      cudnnBackendTensorReordering_t reordering = CUDNN_TENSOR_REORDERING_NONE);
  // Records the first failure (step and cuDNN's message).
  void Check(cudnnStatus_t status, const std::string& step);
  cudnnBackendDescriptor_t Create(cudnnBackendDescriptorType_t type, const std::string& step);
  void Set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
           cudnnBackendAttributeType_t type, int64_t count, const void* value,
           const std::string& step);
  void SetDescriptor(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                     cudnnBackendDescriptor_t value, const std::string& step) {
    Set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value, step);
  }
  void Finalize(cudnnBackendDescriptor_t d, const std::string& step);
  void AddOperation(cudnnBackendDescriptor_t op, const std::string& step);

  cudnnHandle_t handle_;
  std::vector<cudnnBackendDescriptor_t> owned_;  // destroyed in reverse order
  std::vector<cudnnBackendDescriptor_t> ops_;
  int64_t next_virtual_ = 1000;
  std::string error_;
};

}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDNN
#endif  // SINKLAB_LAYERS_CUDA_CUDNN_GRAPH_H_
