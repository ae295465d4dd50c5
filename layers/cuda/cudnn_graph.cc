// CudnnGraph (cudnn_graph.h): descriptors of cuDNN's backend graph API, built with sticky
// errors.
#include "layers/cuda/cudnn_graph.h"

#if SINKLAB_WITH_CUDNN

#include "absl/strings/str_cat.h"

namespace sinklab {
namespace {

constexpr int64_t kTensorAlignment = 16;  // bytes, as cudnn_frontend declares its tensors

// The handle attributes are deprecated in the cuDNN 9.19 headers but read by the 9.x
// releases we run on (9.14 on the device), so they are set.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
constexpr cudnnBackendAttributeName_t kGraphHandle = CUDNN_ATTR_OPERATIONGRAPH_HANDLE;
constexpr cudnnBackendAttributeName_t kPlanHandle = CUDNN_ATTR_EXECUTION_PLAN_HANDLE;
#pragma GCC diagnostic pop

}  // namespace

std::string CudnnErrorMessage(cudnnStatus_t status) {
  std::string message = cudnnGetErrorString(status);
  char last[1024] = {};
  cudnnGetLastErrorString(last, sizeof(last));
  if (last[0] != '\0') absl::StrAppend(&message, " (", last, ")");
  return message;
}

CudnnGraph::~CudnnGraph() {
  for (auto it = owned_.rbegin(); it != owned_.rend(); ++it) cudnnBackendDestroyDescriptor(*it);
}

void CudnnGraph::Pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t precision,
                           cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                           cudnnBackendDescriptor_t y, const char* name, cudnnBackendDescriptor_t t,
                           int64_t axis) {
  const std::string step = absl::StrCat("pointwise ", name);
  cudnnBackendDescriptor_t pw = Create(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, step);
  Set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, step);
  Set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &precision, step);
  if (mode == CUDNN_POINTWISE_GEN_INDEX) {
    Set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, step);
  }
  Finalize(pw, step);
  cudnnBackendDescriptor_t op = Create(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, step);
  if (b != nullptr) SetDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, step);
  if (t != nullptr) SetDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, step);
  AddOperation(op, step);
}

void CudnnGraph::Matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                        cudnnBackendDescriptor_t c, const char* name) {
  const std::string step = absl::StrCat("matmul ", name);
  cudnnBackendDescriptor_t mm = Create(CUDNN_BACKEND_MATMUL_DESCRIPTOR, step);
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  Set(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute, step);
  Finalize(mm, step);
  cudnnBackendDescriptor_t op = Create(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm, step);
  AddOperation(op, step);
}

void CudnnGraph::Reduction(cudnnReduceTensorOp_t reduce, cudnnBackendDescriptor_t x,
                           cudnnBackendDescriptor_t y, const char* name) {
  const std::string step = absl::StrCat("reduction ", name);
  cudnnBackendDescriptor_t red = Create(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, step);
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  Set(red, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &reduce, step);
  Set(red, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute, step);
  Finalize(red, step);
  cudnnBackendDescriptor_t op = Create(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, red, step);
  AddOperation(op, step);
}

void CudnnGraph::Reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y, const char* name) {
  const std::string step = absl::StrCat("reshape ", name);
  cudnnBackendDescriptor_t op = Create(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x, step);
  SetDescriptor(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y, step);
  AddOperation(op, step);
}

cudnnBackendDescriptor_t CudnnGraph::BuildPlan(int64_t* workspace) {
  cudnnBackendDescriptor_t graph = Create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "graph");
  Set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
      static_cast<int64_t>(ops_.size()), ops_.data(), "graph");
  Set(graph, kGraphHandle, CUDNN_TYPE_HANDLE, 1, &handle_, "graph");
  Finalize(graph, "graph (cuDNN does not support this operation graph)");
  cudnnBackendDescriptor_t heur = Create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
  SetDescriptor(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph, "heuristics");
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  Set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics");
  Finalize(heur, "heuristics");
  if (!ok()) return nullptr;
  int64_t count = 0;
  Check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                 0, &count, nullptr),
        "heuristics: number of engine configs");
  if (ok() && count <= 0) error_ = "heuristics: no engine config for this graph";
  if (!ok()) return nullptr;
  std::vector<cudnnBackendDescriptor_t> configs(count);
  for (auto& config : configs) config = Create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "configs");
  int64_t returned = 0;
  Check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                 count, &returned, configs.data()),
        "heuristics: engine configs");
  if (!ok()) return nullptr;
  std::string last_error = "no config returned";
  for (int64_t i = 0; i < returned; ++i) {
    cudnnBackendDescriptor_t plan = Create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "plan");
    Set(plan, kPlanHandle, CUDNN_TYPE_HANDLE, 1, &handle_, "plan");
    SetDescriptor(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configs[i], "plan");
    if (!ok()) return nullptr;
    const cudnnStatus_t status = cudnnBackendFinalize(plan);
    if (status != CUDNN_STATUS_SUCCESS) {  // try the next config
      last_error = CudnnErrorMessage(status);
      continue;
    }
    int64_t got = 0;
    Check(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                   1, &got, workspace),
          "plan: workspace size");
    return ok() ? plan : nullptr;
  }
  error_ = absl::StrCat("execution plan: none of ", returned,
                        " engine configs finalized; the last: ", last_error);
  return nullptr;
}

cudnnBackendDescriptor_t CudnnGraph::MakeTensor(int64_t uid, cudnnDataType_t dtype,
                                                const CudnnDims& dims, const CudnnDims& strides,
                                                const char* name, bool is_virtual, bool by_value,
                                                cudnnBackendTensorReordering_t reordering) {
  const std::string step = absl::StrCat("tensor ", name);
  cudnnBackendDescriptor_t t = Create(CUDNN_BACKEND_TENSOR_DESCRIPTOR, step);
  Set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dtype, step);
  Set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data(), step);
  Set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data(), step);
  Set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, step);
  Set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &kTensorAlignment, step);
  Set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, step);
  if (by_value) Set(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, step);
  if (reordering != CUDNN_TENSOR_REORDERING_NONE) {
    Set(t, CUDNN_ATTR_TENSOR_REORDERING_MODE, CUDNN_TYPE_TENSOR_REORDERING_MODE, 1, &reordering,
        step);
  }
  Finalize(t, step);
  return t;
}

void CudnnGraph::Check(cudnnStatus_t status, const std::string& step) {
  if (status != CUDNN_STATUS_SUCCESS && ok()) {
    error_ = absl::StrCat(step, ": ", CudnnErrorMessage(status));
  }
}

cudnnBackendDescriptor_t CudnnGraph::Create(cudnnBackendDescriptorType_t type,
                                            const std::string& step) {
  if (!ok()) return nullptr;
  cudnnBackendDescriptor_t d = nullptr;
  Check(cudnnBackendCreateDescriptor(type, &d), absl::StrCat(step, " (create)"));
  if (d != nullptr) owned_.push_back(d);
  return d;
}

void CudnnGraph::Set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                     cudnnBackendAttributeType_t type, int64_t count, const void* value,
                     const std::string& step) {
  if (!ok()) return;
  Check(cudnnBackendSetAttribute(d, name, type, count, value),
        absl::StrCat(step, " (attribute ", static_cast<int>(name), ")"));
}

void CudnnGraph::Finalize(cudnnBackendDescriptor_t d, const std::string& step) {
  if (!ok()) return;
  Check(cudnnBackendFinalize(d), absl::StrCat(step, " (finalize)"));
}

void CudnnGraph::AddOperation(cudnnBackendDescriptor_t op, const std::string& step) {
  Finalize(op, step);
  if (ok()) ops_.push_back(op);
}

}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDNN
