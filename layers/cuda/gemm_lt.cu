// GemmLt (layers/cuda/gemm_lt.h). Row-major C = op(A) op(B) is computed as the
// column-major product C^T = op(B)^T op(A)^T: a row-major [r, c] matrix is a column-major
// [c, r] one with leading dimension c, so no data moves.
#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/cuda_check.h"
#include "core/status.h"
#include "layers/cuda/gemm_lt.h"

#define SL_CUBLAS_CHECK(expr)                                                             \
  do {                                                                                    \
    const cublasStatus_t _sl_st = (expr);                                                 \
    if (_sl_st != CUBLAS_STATUS_SUCCESS)                                                  \
      ::sinklab::CheckFailed(__FILE__, __LINE__, #expr, cublasLtGetStatusString(_sl_st)); \
  } while (0)

namespace sinklab {
namespace {

cudaDataType_t CudaType(DType dtype) {
  SL_CHECK_MSG(dtype == DType::kF32 || dtype == DType::kBF16,
               absl::StrCat("GemmLt: unsupported dtype ", DTypeName(dtype)));
  return dtype == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF;
}

// The largest power of two (<= 256) dividing the address: cuBLASLt picks kernels by it.
int Alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && a % align != 0) align >>= 1;
  return align;
}

int64_t Rows(const Tensor& t) { return t.numel() / t.dim(-1); }

// Alignment of every matrix of a strided batch: the base's and the stride's (in bytes).
int BatchAlignment(const Tensor& t) {
  const int64_t stride_bytes = t.dim(1) * t.dim(2) * static_cast<int64_t>(DTypeSize(t.dtype()));
  int align = Alignment(t.data());
  while (align > 1 && stride_bytes % align != 0) align >>= 1;
  return align;
}

// Sets a layout's batch count and the element stride between its matrices.
void SetBatch(cublasLtMatrixLayout_t layout, int64_t batch, int64_t stride) {
  const int32_t count = static_cast<int32_t>(batch);
  SL_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                   &count, sizeof(count)));
  SL_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
      layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
}

constexpr int kAutotuneCandidates = 8;
constexpr int kAutotuneRuns = 5;

bool AutotuneEnabled() {
  const char* env = std::getenv("SINKLAB_GEMM_AUTOTUNE");
  return env == nullptr || std::string(env) != "0";
}

// The algorithm chosen for each (problem, workspace bytes), shared by every GemmLt of the
// process.
template <typename Key>
std::map<std::pair<Key, size_t>, cublasLtMatmulAlgo_t>& ChosenAlgorithms(std::mutex** mu) {
  static std::mutex chosen_mu;
  static std::map<std::pair<Key, size_t>, cublasLtMatmulAlgo_t> chosen;
  *mu = &chosen_mu;
  return chosen;
}

}  // namespace

struct GemmLt::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (op) cublasLtMatmulDescDestroy(op);
    for (auto l : {a, b, c}) {
      if (l) cublasLtMatrixLayoutDestroy(l);
    }
  }
};

GemmLt::GemmLt(cudaStream_t stream, size_t workspace_bytes)
    : stream_(stream), workspace_bytes_(workspace_bytes) {
  cublasLtHandle_t handle;
  SL_CUBLAS_CHECK(cublasLtCreate(&handle));
  handle_ = handle;
  SL_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

GemmLt::~GemmLt() {
  plans_.clear();
  cudaFree(workspace_);
  cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

const GemmLt::Plan& GemmLt::PlanFor(const Key& key, const Operands& ops) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  const auto [m, n, k, trans_a, trans_b, in_type, out_type, has_beta, align, batch, shared] = key;
  auto plan = std::make_unique<Plan>();
  const cudaDataType_t in = static_cast<cudaDataType_t>(in_type);
  const cudaDataType_t out = static_cast<cudaDataType_t>(out_type);
  SL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // cuBLASLt's A is our op(b)^T side, its B our op(a)^T side (see the file comment).
  const cublasOperation_t lt_ta = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t lt_tb = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  SL_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &lt_ta, sizeof(lt_ta)));
  SL_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &lt_tb, sizeof(lt_tb)));
  // Stored column-major shapes: b is [n, k] (ld n) or, transposed, [k, n] (ld k).
  SL_CUBLAS_CHECK(trans_b ? cublasLtMatrixLayoutCreate(&plan->a, in, k, n, k)
                          : cublasLtMatrixLayoutCreate(&plan->a, in, n, k, n));
  SL_CUBLAS_CHECK(trans_a ? cublasLtMatrixLayoutCreate(&plan->b, in, m, k, m)
                          : cublasLtMatrixLayoutCreate(&plan->b, in, k, m, k));
  SL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, out, n, m, n));
  if (batch > 1) {  // dense strides: cuBLASLt's A is our b [k, n], its B our a [m, k]
    SetBatch(plan->a, batch, (shared & 2) ? 0 : k * n);
    SetBatch(plan->b, batch, (shared & 1) ? 0 : m * k);
    SetBatch(plan->c, batch, m * n);
  }

  cublasLtMatmulPreference_t pref;
  SL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  SL_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_, sizeof(workspace_bytes_)));
  const uint32_t align_bytes = static_cast<uint32_t>(align);
  for (auto attr :
       {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
    SL_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, attr, &align_bytes, sizeof(align_bytes)));
  }
  std::mutex* mu = nullptr;
  auto& chosen = ChosenAlgorithms<Key>(&mu);
  {
    std::lock_guard<std::mutex> lock(*mu);
    const auto it = chosen.find({key, workspace_bytes_});
    if (it != chosen.end()) {
      cublasLtMatmulPreferenceDestroy(pref);
      plan->algo = it->second;
      return *(plans_[key] = std::move(plan));
    }
  }
  cublasLtMatmulHeuristicResult_t results[kAutotuneCandidates];
  int found = 0;
  SL_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(
      static_cast<cublasLtHandle_t>(handle_), plan->op, plan->a, plan->b, plan->c, plan->c, pref,
      AutotuneEnabled() ? kAutotuneCandidates : 1, results, &found));
  cublasLtMatmulPreferenceDestroy(pref);
  SL_CHECK_MSG(found > 0, absl::StrCat("cuBLASLt found no algorithm for m=", m, " n=", n, " k=", k,
                                       " beta=", has_beta, " batch=", batch));
  cublasLtMatmulAlgo_t algos[kAutotuneCandidates];
  for (int i = 0; i < found; ++i) algos[i] = results[i].algo;
  plan->algo = algos[found > 1 ? FastestAlgorithm(*plan, algos, found, ops) : 0];
  {
    std::lock_guard<std::mutex> lock(*mu);
    chosen.emplace(std::make_pair(key, workspace_bytes_), plan->algo);
  }
  return *(plans_[key] = std::move(plan));
}

int GemmLt::Launch(const Plan& plan, const void* algo, const Operands& ops, void* d) {
  return static_cast<int>(cublasLtMatmul(
      static_cast<cublasLtHandle_t>(handle_), plan.op, &ops.alpha, ops.b, plan.a, ops.a, plan.b,
      &ops.beta, ops.c, plan.c, d, plan.c, static_cast<const cublasLtMatmulAlgo_t*>(algo),
      workspace_, workspace_bytes_, stream_));
}

int GemmLt::FastestAlgorithm(const Plan& plan, const void* algos, int count, const Operands& ops) {
  // Runs write d, which the real call overwrites next, unless d is also the c it accumulates
  // (then a temporary d; without memory for one, no timing).
  void* d = ops.d;
  void* temporary = nullptr;
  if (ops.beta != 0.0f && ops.c == ops.d) {
    if (cudaMalloc(&temporary, ops.d_bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    d = temporary;
  }
  cudaEvent_t start, stop;
  SL_CUDA_CHECK(cudaEventCreate(&start));
  SL_CUDA_CHECK(cudaEventCreate(&stop));
  int best = 0;
  float best_ms = -1.0f;
  for (int i = 0; i < count; ++i) {
    const auto* algo = static_cast<const cublasLtMatmulAlgo_t*>(algos) + i;
    if (Launch(plan, algo, ops, d) != CUBLAS_STATUS_SUCCESS) continue;  // warm-up
    SL_CUDA_CHECK(cudaEventRecord(start, stream_));
    for (int r = 0; r < kAutotuneRuns; ++r)
      SL_CUBLAS_CHECK(static_cast<cublasStatus_t>(Launch(plan, algo, ops, d)));
    SL_CUDA_CHECK(cudaEventRecord(stop, stream_));
    SL_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    SL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (best_ms < 0.0f || ms < best_ms) {
      best_ms = ms;
      best = i;
    }
  }
  SL_CUDA_CHECK(cudaEventDestroy(start));
  SL_CUDA_CHECK(cudaEventDestroy(stop));
  if (temporary != nullptr) SL_CUDA_CHECK(cudaFree(temporary));
  return best;
}

void GemmLt::Run(const Key& key, const Operands& ops) {
  const Plan& plan = PlanFor(key, ops);
  SL_CUBLAS_CHECK(static_cast<cublasStatus_t>(Launch(plan, &plan.algo, ops, ops.d)));
}

void GemmLt::RowMajor(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                      float alpha, float beta) {
  RowMajor(c, a, trans_a, b, trans_b, alpha, beta, c);
}

void GemmLt::RowMajor(const Tensor& d, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                      float alpha, float beta, const Tensor& c) {
  SL_CHECK_MSG(a.dtype() == b.dtype(), "GemmLt: a and b must share a dtype");
  const int64_t a_rows = Rows(a), a_cols = a.dim(-1);
  const int64_t b_rows = Rows(b), b_cols = b.dim(-1);
  const int64_t m = trans_a ? a_cols : a_rows, k = trans_a ? a_rows : a_cols;
  const int64_t kb = trans_b ? b_cols : b_rows, n = trans_b ? b_rows : b_cols;
  SL_CHECK_MSG(
      k == kb && Rows(d) == m && d.dim(-1) == n,
      absl::StrCat("GemmLt: d ", d.ShapeString(), " = op(a ", a.ShapeString(), trans_a ? "^T" : "",
                   ") op(b ", b.ShapeString(), trans_b ? "^T" : "", ")"));
  SL_CHECK_MSG(c.dtype() == d.dtype() && Rows(c) == m && c.dim(-1) == n,
               absl::StrCat("GemmLt: c ", c.ShapeString(), " ", DTypeName(c.dtype()),
                            " must match d ", d.ShapeString(), " ", DTypeName(d.dtype())));
  const int align = std::min(
      {Alignment(a.data()), Alignment(b.data()), Alignment(c.data()), Alignment(d.data())});
  const Key key{
      m,           n, k, trans_a, trans_b, CudaType(a.dtype()), CudaType(d.dtype()), beta != 0.0f,
      align,
      /*batch=*/1,
      /*shared=*/0};
  Run(key, Operands{a.data(), b.data(), c.data(), d.data(), alpha, beta, d.nbytes()});
}

void GemmLt::RowMajorBatched(const Tensor& d, const Tensor& a, bool trans_a, const Tensor& b,
                             bool trans_b, float alpha, float beta, const Tensor& c) {
  SL_CHECK_MSG(a.dtype() == b.dtype(), "GemmLt: a and b must share a dtype");
  const bool a_shared = a.rank() == 2, b_shared = b.rank() == 2;
  SL_CHECK_MSG(
      (a.rank() == 3 || a_shared) && (b.rank() == 3 || b_shared) && c.rank() == 3 && d.rank() == 3,
      absl::StrCat("GemmLt batched: rank-3 operands (a or b may be rank 2) expected, got d ",
                   d.ShapeString(), " a ", a.ShapeString(), " b ", b.ShapeString(), " c ",
                   c.ShapeString()));
  const int64_t batch = d.dim(0);
  SL_CHECK_MSG(batch >= 1 && batch <= int64_t{INT32_MAX} && (a_shared || a.dim(0) == batch) &&
                   (b_shared || b.dim(0) == batch) && c.dim(0) == batch,
               absl::StrCat("GemmLt batched: batch counts d ", d.ShapeString(), " a ",
                            a.ShapeString(), " b ", b.ShapeString(), " c ", c.ShapeString()));
  SL_CHECK_MSG(
      c.dtype() == d.dtype() && c.dim(1) == d.dim(1) && c.dim(2) == d.dim(2),
      absl::StrCat("GemmLt batched: c ", c.ShapeString(), " must match d ", d.ShapeString()));
  // The last two dims of each operand are its matrix.
  const int64_t a1 = a.dim(-2), a2 = a.dim(-1), b1 = b.dim(-2), b2 = b.dim(-1);
  const int64_t m = trans_a ? a2 : a1, k = trans_a ? a1 : a2;
  const int64_t kb = trans_b ? b2 : b1, n = trans_b ? b1 : b2;
  SL_CHECK_MSG(
      k == kb && d.dim(1) == m && d.dim(2) == n,
      absl::StrCat("GemmLt batched: d ", d.ShapeString(), " = op(a ", a.ShapeString(),
                   trans_a ? "^T" : "", ") op(b ", b.ShapeString(), trans_b ? "^T" : "", ")"));
  const int align = std::min({a_shared ? Alignment(a.data()) : BatchAlignment(a),
                              b_shared ? Alignment(b.data()) : BatchAlignment(b), BatchAlignment(c),
                              BatchAlignment(d)});
  const Key key{m,
                n,
                k,
                trans_a,
                trans_b,
                CudaType(a.dtype()),
                CudaType(d.dtype()),
                beta != 0.0f,
                align,
                batch,
                (a_shared ? 1 : 0) | (b_shared ? 2 : 0)};
  Run(key, Operands{a.data(), b.data(), c.data(), d.data(), alpha, beta, d.nbytes()});
}

}  // namespace sinklab
