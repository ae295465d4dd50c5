// CudnnAttention (cudnn_attention.h): the forward and backward operation graphs of causal
// softmax attention in cuDNN's backend API (built with CudnnGraph, cudnn_graph.h), their
// plans, and their execution.
//
// The node patterns follow the ones cudnn_frontend emits for sdpa / sdpa_backward with a
// causal mask and stats on cuDNN 9 (its include/cudnn_frontend/node/
// scaled_dot_product_flash_attention.h and softmax.h); the fused engine matches these graphs
// strictly, so the order, the dtypes of the virtual tensors and the by-value scalars are as
// there.
#include "layers/cuda/cudnn_attention.h"

#if SINKLAB_WITH_CUDNN

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/cuda_check.h"
#include "core/log.h"
#include "layers/cuda/cudnn_graph.h"

namespace sinklab {
namespace {

// Unique ids of the graphs' tensors in the variant pack (CudnnGraph numbers its virtuals from
// 1000).
enum Uid : int64_t {
  kUidQ = 1,
  kUidK,  // as K^T [B, Hkv, d, S]
  kUidV,  // the backward's as V^T [B, Hkv, d, S]
  kUidO,
  kUidStats,
  kUidScale,   // by value: the score scale
  kUidLowest,  // by value: the masked scores' value
  kUidDout,
  kUidDq,
  kUidDk,
  kUidDv,
  kUidSoftmaxSum,  // backward scratch: D_i = dout_i . out_i, fp32 [B, H, S, 1]
  kUidDqAccum,     // backward scratch: dq in fp32 [B, H, S, d]
  kUidOne,         // by value: 1 (the dropout-scale slot of the backward pattern)
};

constexpr int64_t kAlign = 256;  // workspace sub-buffers
int64_t AlignUp(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// Packed row-major strides of dims.
CudnnDims Packed(const CudnnDims& dims) {
  return {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
}
// The last two dims (or strides) swapped: the transposed view of the same memory.
CudnnDims Swap23(CudnnDims x) {
  std::swap(x[2], x[3]);
  return x;
}
// Strides of sinklab's [B, rows, heads, d] tensor seen as cuDNN's [B, heads, S, d].
CudnnDims TokenMajor(const CudnnAttentionShape& s, int64_t rows, int64_t heads) {
  return {rows * heads * s.head_dim, s.head_dim, heads * s.head_dim, 1};
}
CudnnDims QueryStrides(const CudnnAttentionShape& s) { return TokenMajor(s, s.q_rows, s.heads); }
CudnnDims KvStrides(const CudnnAttentionShape& s) { return TokenMajor(s, s.kv_rows, s.kv_heads); }
// k, v, dk or dv from cuDNN's first key row on (past the skipped rows of batch 0).
void* KvRows(const CudnnAttentionShape& s, const Tensor& x) {
  return static_cast<char*>(x.data()) + s.skipped_rows() * s.kv_heads * s.head_dim * 2;
}
// q, out, dout or dq from cuDNN's first query row on.
void* QueryRows(const CudnnAttentionShape& s, const Tensor& x) {
  return static_cast<char*>(x.data()) + s.skipped_queries() * s.heads * s.head_dim * 2;
}

constexpr cudnnDataType_t kF32 = CUDNN_DATA_FLOAT;
constexpr cudnnDataType_t kBf16 = CUDNN_DATA_BFLOAT16;

// Spellings of the same graphs that cudnn_frontend has emitted across its versions. The
// first is tried first; the others only when cuDNN refuses it (a refusal names each).
struct Spelling {
  cudnnDataType_t index_dtype;   // GEN_INDEX's output and math type
  bool mask_after_stats;         // backward: causal select after "scores - stats"
  cudnnDataType_t k_view_dtype;  // backward: K's reshaped view in dQ = dS K
  // backward, cudnn_frontend 1.5's: softmax_sum virtual, dP * 1 before "- softmax_sum",
  // dQ_accum reordered F16x16 and zeroed by us.
  bool legacy;
  const char* name;
};
constexpr Spelling kForwardSpellings[] = {
    {CUDNN_DATA_INT32, false, kF32, false, "int32 indices"},
    {kF32, false, kF32, false, "fp32 indices"},
};
constexpr Spelling kBackwardSpellings[] = {
    {CUDNN_DATA_INT32, false, kF32, false, "int32 indices, mask before stats"},
    {CUDNN_DATA_INT32, true, kF32, false, "mask after stats"},
    {CUDNN_DATA_INT32, false, kF32, true, "cudnn_frontend 1.5"},
    {CUDNN_DATA_INT32, false, kBf16, false, "bf16 view of k"},
    {kF32, false, kF32, false, "fp32 indices"},
};

// x where row >= col, the lowest float elsewhere (cudnn_frontend's causal mask: GEN_INDEX
// rows and columns, CMP_GE to a boolean, BINARY_SELECT(x, lowest, visible)).
cudnnBackendDescriptor_t CausalMask(CudnnGraph& g, cudnnBackendDescriptor_t x,
                                    cudnnBackendDescriptor_t lowest, const CudnnDims& dims,
                                    const Spelling& spelling) {
  const CudnnDims strides = Packed(dims);
  const cudnnDataType_t index = spelling.index_dtype;
  cudnnBackendDescriptor_t row = g.Virtual(index, dims, strides, "row index");
  g.Pointwise(CUDNN_POINTWISE_GEN_INDEX, index, x, nullptr, row, "row index", nullptr,
              /*axis=*/2);
  cudnnBackendDescriptor_t col = g.Virtual(index, dims, strides, "column index");
  g.Pointwise(CUDNN_POINTWISE_GEN_INDEX, index, x, nullptr, col, "column index", nullptr,
              /*axis=*/3);
  cudnnBackendDescriptor_t visible = g.Virtual(CUDNN_DATA_BOOLEAN, dims, strides, "visible");
  g.Pointwise(CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, visible, "row >= column");
  cudnnBackendDescriptor_t masked = g.Virtual(kF32, dims, strides, "masked scores");
  g.Pointwise(CUDNN_POINTWISE_BINARY_SELECT, kF32, x, lowest, masked, "causal select", visible);
  return masked;
}

// scores * scale.
cudnnBackendDescriptor_t Scaled(CudnnGraph& g, cudnnBackendDescriptor_t scores,
                                cudnnBackendDescriptor_t scale, const CudnnDims& dims) {
  cudnnBackendDescriptor_t scaled = g.Virtual(kF32, dims, Packed(dims), "scaled scores");
  g.Pointwise(CUDNN_POINTWISE_MUL, kF32, scores, scale, scaled, "scale");
  return scaled;
}

// dx [B, Hkv, S, d] = a @ b with a [B, H, S, S], b [B, H, S, d]: one matmul with MHA; with
// GQA per query head into a bf16 virtual [B, H, S, d], then summed over each head group.
void GradientOfKv(CudnnGraph& g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                  cudnnBackendDescriptor_t dx, const CudnnAttentionShape& s, const char* name) {
  if (s.heads == s.kv_heads) return g.Matmul(a, b, dx, name);
  const CudnnDims full{s.batch, s.heads, s.seq, s.head_dim};
  cudnnBackendDescriptor_t per_head = g.Virtual(kBf16, full, Packed(full), name);
  g.Matmul(a, b, per_head, name);
  g.Reduction(CUDNN_REDUCE_TENSOR_ADD, per_head, dx, name);
}

void BuildForward(CudnnGraph& g, const CudnnAttentionShape& s, const Spelling& spelling) {
  const int64_t B = s.batch, S = s.seq, H = s.heads, G = s.kv_heads, d = s.head_dim;
  const CudnnDims q_dims{B, H, S, d}, kv_dims{B, G, S, d}, score_dims{B, H, S, S};
  const CudnnDims row_dims{B, H, S, 1}, kv_strides = KvStrides(s);
  const CudnnDims score_strides = Packed(score_dims), row_strides = Packed(row_dims);
  auto q = g.PackTensor(kUidQ, kBf16, q_dims, QueryStrides(s), "q");
  auto kt = g.PackTensor(kUidK, kBf16, Swap23(kv_dims), Swap23(kv_strides), "k^T");
  auto v = g.PackTensor(kUidV, kBf16, kv_dims, kv_strides, "v");
  auto o = g.PackTensor(kUidO, kBf16, q_dims, QueryStrides(s), "o");
  auto stats = g.PackTensor(kUidStats, kF32, row_dims, row_strides, "stats");
  auto scale = g.Scalar(kUidScale, "scale");
  auto lowest = g.Scalar(kUidLowest, "lowest");

  auto scores = g.Virtual(kF32, score_dims, score_strides, "scores");
  g.Matmul(q, kt, scores, "q k^T");
  auto masked = CausalMask(g, Scaled(g, scores, scale, score_dims), lowest, score_dims, spelling);
  // Softmax with stats (cudnn_frontend's softmax node): stats = max + log sum exp(s - max).
  auto max = g.Virtual(kF32, row_dims, row_strides, "row max");
  g.Reduction(CUDNN_REDUCE_TENSOR_MAX, masked, max, "row max");
  auto shifted = g.Virtual(kF32, score_dims, score_strides, "shifted scores");
  g.Pointwise(CUDNN_POINTWISE_SUB, kF32, masked, max, shifted, "subtract max");
  auto e = g.Virtual(kF32, score_dims, score_strides, "exp scores");
  g.Pointwise(CUDNN_POINTWISE_EXP, kF32, shifted, nullptr, e, "exp");
  auto sum = g.Virtual(kF32, row_dims, row_strides, "row sum");
  g.Reduction(CUDNN_REDUCE_TENSOR_ADD, e, sum, "row sum");
  auto log_sum = g.Virtual(kF32, row_dims, row_strides, "log row sum");
  g.Pointwise(CUDNN_POINTWISE_LOG, kF32, sum, nullptr, log_sum, "log");
  g.Pointwise(CUDNN_POINTWISE_ADD, kF32, max, log_sum, stats, "stats");
  // P in the inputs' dtype: the engine requires the second matmul's A in bf16.
  auto p = g.Virtual(kBf16, score_dims, score_strides, "probs");
  g.Pointwise(CUDNN_POINTWISE_DIV, kF32, e, sum, p, "normalize");
  g.Matmul(p, v, o, "p v");
}

void BuildBackward(CudnnGraph& g, const CudnnAttentionShape& s, const Spelling& spelling) {
  const int64_t B = s.batch, S = s.seq, H = s.heads, G = s.kv_heads, d = s.head_dim;
  const CudnnDims q_dims{B, H, S, d}, kv_dims{B, G, S, d}, score_dims{B, H, S, S};
  const CudnnDims row_dims{B, H, S, 1}, q_strides = QueryStrides(s), kv_strides = KvStrides(s);
  const CudnnDims score_strides = Packed(score_dims), row_strides = Packed(row_dims);
  auto q = g.PackTensor(kUidQ, kBf16, q_dims, q_strides, "q");
  auto kt = g.PackTensor(kUidK, kBf16, Swap23(kv_dims), Swap23(kv_strides), "k^T");
  auto vt = g.PackTensor(kUidV, kBf16, Swap23(kv_dims), Swap23(kv_strides), "v^T");
  auto o = g.PackTensor(kUidO, kBf16, q_dims, q_strides, "o");
  auto dout = g.PackTensor(kUidDout, kBf16, q_dims, q_strides, "dO");
  auto stats = g.PackTensor(kUidStats, kF32, row_dims, row_strides, "stats");
  auto dq = g.PackTensor(kUidDq, kBf16, q_dims, q_strides, "dQ");
  auto dk = g.PackTensor(kUidDk, kBf16, kv_dims, kv_strides, "dK");
  auto dv = g.PackTensor(kUidDv, kBf16, kv_dims, kv_strides, "dV");
  auto softmax_sum = spelling.legacy
                         ? g.Virtual(kF32, row_dims, row_strides, "softmax_sum")
                         : g.PackTensor(kUidSoftmaxSum, kF32, row_dims, row_strides, "softmax_sum");
  auto dq_accum =
      g.PackTensor(kUidDqAccum, kF32, q_dims, Packed(q_dims), "dQ_accum",
                   spelling.legacy ? CUDNN_TENSOR_REORDERING_F16x16 : CUDNN_TENSOR_REORDERING_NONE);
  auto scale = g.Scalar(kUidScale, "scale");
  auto lowest = g.Scalar(kUidLowest, "lowest");
  auto one = g.Scalar(kUidOne, "one");

  // D_i = dout_i . out_i (= sum_j p_ij dp_ij), times the pattern's dropout slot 1.
  auto products = g.Virtual(kF32, q_dims, Packed(q_dims), "dO * O");
  g.Pointwise(CUDNN_POINTWISE_MUL, kF32, dout, o, products, "dO * O");
  auto dots = g.Virtual(kF32, row_dims, row_strides, "dO . O");
  g.Reduction(CUDNN_REDUCE_TENSOR_ADD, products, dots, "dO . O");
  g.Pointwise(CUDNN_POINTWISE_MUL, kF32, dots, one, softmax_sum, "softmax_sum");
  // P = exp(masked scores - lse).
  auto scores = g.Virtual(kF32, score_dims, score_strides, "scores");
  g.Matmul(q, kt, scores, "q k^T");
  auto scaled = Scaled(g, scores, scale, score_dims);
  const auto subtract_stats = [&](cudnnBackendDescriptor_t x) {
    auto shifted = g.Virtual(kF32, score_dims, score_strides, "scores - stats");
    g.Pointwise(CUDNN_POINTWISE_SUB, kF32, x, stats, shifted, "subtract stats");
    return shifted;
  };
  auto shifted = spelling.mask_after_stats
                     ? CausalMask(g, subtract_stats(scaled), lowest, score_dims, spelling)
                     : subtract_stats(CausalMask(g, scaled, lowest, score_dims, spelling));
  auto p = g.Virtual(kF32, score_dims, score_strides, "probs");
  g.Pointwise(CUDNN_POINTWISE_EXP, kF32, shifted, nullptr, p, "exp");
  // dV = P^T dO.
  auto pt = g.Virtual(kBf16, Swap23(score_dims), Swap23(score_strides), "probs^T");
  g.Reshape(p, pt, "probs^T");
  GradientOfKv(g, pt, dout, dv, s, "dV");
  // dS = P (dO V^T - D) * scale.
  auto dp = g.Virtual(kF32, score_dims, score_strides, "dP");
  g.Matmul(dout, vt, dp, "dO v^T");
  if (spelling.legacy) {  // the dropout-mask slot, 1
    auto dp_masked = g.Virtual(kF32, score_dims, score_strides, "dP * 1");
    g.Pointwise(CUDNN_POINTWISE_MUL, kF32, dp, one, dp_masked, "dP * 1");
    dp = dp_masked;
  }
  auto centered = g.Virtual(kF32, score_dims, score_strides, "dP - D");
  g.Pointwise(CUDNN_POINTWISE_SUB, kF32, dp, softmax_sum, centered, "dP - D");
  auto ds_unscaled = g.Virtual(kF32, score_dims, score_strides, "P (dP - D)");
  g.Pointwise(CUDNN_POINTWISE_MUL, kF32, centered, p, ds_unscaled, "P (dP - D)");
  auto ds = g.Virtual(kF32, score_dims, score_strides, "dS");
  g.Pointwise(CUDNN_POINTWISE_MUL, kF32, ds_unscaled, scale, ds, "dS scale");
  // dK = dS^T Q.
  auto dst = g.Virtual(kBf16, Swap23(score_dims), Swap23(score_strides), "dS^T");
  g.Reshape(ds, dst, "dS^T");
  GradientOfKv(g, dst, q, dk, s, "dK");
  // dQ = dS K, through the fp32 dQ_accum (the view of K is an fp32 virtual in the pattern,
  // as cudnn_frontend leaves it: intermediates default to fp32 there).
  auto k = g.Virtual(spelling.k_view_dtype, kv_dims, kv_strides, "k");
  g.Reshape(kt, k, "k");
  g.Matmul(ds, k, dq_accum, "dS k");
  g.Pointwise(CUDNN_POINTWISE_IDENTITY, kF32, dq_accum, nullptr, dq, "dQ");
}

// Runs `plan` with the variant pack (uid, pointer) and the engine's workspace; returns
// empty, or the failing call with cuDNN's message.
std::string Execute(cudnnHandle_t handle, cudnnBackendDescriptor_t plan,
                    const std::vector<std::pair<int64_t, void*>>& pack, void* workspace) {
  std::vector<int64_t> uids;
  std::vector<void*> pointers;
  for (const auto& [uid, pointer] : pack) {
    uids.push_back(uid);
    pointers.push_back(pointer);
  }
  const int64_t n = static_cast<int64_t>(pack.size());
  cudnnBackendDescriptor_t vp = nullptr;
  cudnnStatus_t status = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
  const char* step = "variant pack";
  if (status == CUDNN_STATUS_SUCCESS) {
    status = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n,
                                      uids.data());
  }
  if (status == CUDNN_STATUS_SUCCESS) {
    status = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                      CUDNN_TYPE_VOID_PTR, n, pointers.data());
  }
  if (status == CUDNN_STATUS_SUCCESS) {
    status = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1,
                                      &workspace);
  }
  if (status == CUDNN_STATUS_SUCCESS) status = cudnnBackendFinalize(vp);
  if (status == CUDNN_STATUS_SUCCESS) {
    step = "execute";
    status = cudnnBackendExecute(handle, plan, vp);
  }
  std::string error;
  if (status != CUDNN_STATUS_SUCCESS) error = absl::StrCat(step, ": ", CudnnErrorMessage(status));
  if (vp != nullptr) SL_CUDNN_CHECK(cudnnBackendDestroyDescriptor(vp));
  return error;
}

}  // namespace

std::string CudnnAttentionShape::ToString() const {
  return absl::StrCat("B=", batch, " S=", seq, " H=", heads, " Hkv=", kv_heads, " d=", head_dim,
                      kv_rows == seq ? "" : absl::StrCat(" kv rows=", kv_rows),
                      q_rows == seq ? "" : absl::StrCat(" q rows=", q_rows));
}

struct CudnnAttention::Plan {
  std::unique_ptr<CudnnGraph> graph;  // owns every descriptor, the plan's included
  cudnnBackendDescriptor_t plan = nullptr;
  const Spelling* spelling = nullptr;  // of the graph cuDNN took
  int64_t scratch_bytes = 0;           // our own buffers in front of the engine's (backward)
  int64_t engine_bytes = 0;
  size_t WorkspaceBytes() const { return static_cast<size_t>(scratch_bytes + engine_bytes); }
};

CudnnAttention::CudnnAttention(cudaStream_t stream) : stream_(stream) {
  cudnnStatus_t status = cudnnCreate(&handle_);
  if (status == CUDNN_STATUS_SUCCESS) status = cudnnSetStream(handle_, stream);
  if (status != CUDNN_STATUS_SUCCESS) {  // every shape falls back to sinklab's kernels
    init_error_ = absl::StrCat("cuDNN handle: ", CudnnErrorMessage(status));
  }
}

CudnnAttention::~CudnnAttention() {
  plans_.clear();  // before the handle they were built with
  if (handle_ != nullptr) cudnnDestroy(handle_);
}

CudnnAttention::Plan* CudnnAttention::GetPlan(bool backward, const CudnnAttentionShape& s,
                                              std::string* why) {
  const Key key{backward, s.batch, s.seq, s.heads, s.kv_heads, s.head_dim, s.kv_rows, s.q_rows};
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();
  std::string reason;
  if (auto it = refused_.find(key); it != refused_.end()) {
    reason = it->second;
  } else {
    if (!init_error_.empty()) {
      reason = init_error_;
    } else if (s.head_dim != 64 && s.head_dim != 128) {
      reason = "head dim must be 64 or 128";
    } else if (s.batch <= 0 || s.seq <= 0 || s.kv_heads <= 0 || s.heads % s.kv_heads != 0 ||
               s.kv_rows < s.seq || s.q_rows < s.seq) {
      reason = "needs B, S > 0, H a multiple of Hkv and at least S rows of queries and keys";
    } else if (!backward && s.q_rows != s.seq) {
      reason = "the forward runs every query row";
    } else if (backward && s.seq % 128 != 0 && cudnnGetVersion() <= 91500) {
      // cudnn_frontend adds a padding mask to the backward graph on these versions when S is
      // no multiple of 128 (a workaround of a cuDNN bug); we do not build that variant.
      reason = absl::StrCat("cuDNN ", cudnnGetVersion(), " <= 9.15.0 needs S % 128 == 0");
    } else {
      std::unique_ptr<Plan> plan = BuildPlan(backward, s, &reason);
      if (plan != nullptr) {
        Plan* built = plan.get();
        plans_[key] = std::move(plan);
        return built;
      }
    }
    Refuse(backward, s, reason);
  }
  if (why != nullptr) *why = reason;
  return nullptr;
}

std::unique_ptr<CudnnAttention::Plan> CudnnAttention::BuildPlan(bool backward,
                                                                const CudnnAttentionShape& s,
                                                                std::string* why) {
  const auto spellings =
      backward ? absl::MakeConstSpan(kBackwardSpellings) : absl::MakeConstSpan(kForwardSpellings);
  std::string errors;
  for (const Spelling& spelling : spellings) {
    auto plan = std::make_unique<Plan>();
    plan->spelling = &spelling;
    plan->graph = std::make_unique<CudnnGraph>(handle_);
    if (backward) {
      BuildBackward(*plan->graph, s, spelling);
      const int64_t rows = s.batch * s.heads * s.seq;
      // softmax_sum, dQ_accum, and cuDNN's rows of lse packed when it skips query rows
      plan->scratch_bytes = AlignUp(rows * 4) + AlignUp(rows * s.head_dim * 4) +
                            (s.q_rows > s.seq ? AlignUp(rows * 4) : 0);
    } else {
      BuildForward(*plan->graph, s, spelling);
    }
    plan->plan = plan->graph->BuildPlan(&plan->engine_bytes);
    if (plan->plan != nullptr) {
      if (!errors.empty()) {
        LogWarning(absl::StrCat("cuDNN attention: ", backward ? "backward" : "forward", " for ",
                                s.ToString(), " built with the spelling '", spelling.name,
                                "' after refusals: ", errors));
      }
      return plan;
    }
    absl::StrAppend(&errors, errors.empty() ? "" : "; ", "[", spelling.name, "] ",
                    plan->graph->error());
  }
  *why = errors;
  return nullptr;
}

void CudnnAttention::Refuse(bool backward, const CudnnAttentionShape& s,
                            const std::string& reason) {
  const Key key{backward, s.batch, s.seq, s.heads, s.kv_heads, s.head_dim, s.kv_rows, s.q_rows};
  plans_.erase(key);
  refused_[key] = reason;
  LogWarning(absl::StrCat("cuDNN attention: no ", backward ? "backward" : "forward", " for ",
                          s.ToString(), ": ", reason,
                          "; CudaBackend takes another path (cuda_backend.h)"));
}

bool CudnnAttention::ForwardSupported(const CudnnAttentionShape& shape, std::string* why) {
  return GetPlan(/*backward=*/false, shape, why) != nullptr;
}

bool CudnnAttention::BackwardSupported(const CudnnAttentionShape& shape, std::string* why) {
  return GetPlan(/*backward=*/true, shape, why) != nullptr;
}

size_t CudnnAttention::ForwardWorkspaceBytes(const CudnnAttentionShape& shape) {
  const Plan* plan = GetPlan(/*backward=*/false, shape, nullptr);
  SL_CHECK_MSG(plan != nullptr, absl::StrCat("no cuDNN forward plan for ", shape.ToString()));
  return plan->WorkspaceBytes();
}

size_t CudnnAttention::BackwardWorkspaceBytes(const CudnnAttentionShape& shape) {
  const Plan* plan = GetPlan(/*backward=*/true, shape, nullptr);
  SL_CHECK_MSG(plan != nullptr, absl::StrCat("no cuDNN backward plan for ", shape.ToString()));
  return plan->WorkspaceBytes();
}

bool CudnnAttention::Forward(const CudnnAttentionShape& shape, float scale, const Tensor& out,
                             const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                             void* workspace) {
  const Plan* plan = GetPlan(/*backward=*/false, shape, nullptr);
  SL_CHECK_MSG(plan != nullptr, absl::StrCat("no cuDNN forward plan for ", shape.ToString()));
  // By-value scalars are read from host memory when the plan is executed.
  float scale_value = scale, lowest = std::numeric_limits<float>::lowest();
  const std::string error = Execute(handle_, plan->plan,
                                    {{kUidQ, q.data()},
                                     {kUidK, KvRows(shape, k)},
                                     {kUidV, KvRows(shape, v)},
                                     {kUidO, out.data()},
                                     {kUidStats, lse.data()},
                                     {kUidScale, &scale_value},
                                     {kUidLowest, &lowest}},
                                    workspace);
  if (!error.empty()) Refuse(/*backward=*/false, shape, error);
  return error.empty();
}

bool CudnnAttention::Backward(const CudnnAttentionShape& shape, float scale, const Tensor& dq,
                              const Tensor& dk, const Tensor& dv, const Tensor& dout,
                              const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, void* workspace) {
  const Plan* plan = GetPlan(/*backward=*/true, shape, nullptr);
  SL_CHECK_MSG(plan != nullptr, absl::StrCat("no cuDNN backward plan for ", shape.ToString()));
  // Workspace: softmax_sum [B, H, S] f32, dQ_accum [B, H, S, d] f32, (skipping query rows)
  // the packed stats [B, H, S] f32, the engine's.
  const int64_t rows = shape.batch * shape.heads * shape.seq;
  char* base = static_cast<char*>(workspace);
  void* softmax_sum = base;
  void* dq_accum = base + AlignUp(rows * 4);
  void* stats = lse.data();
  if (shape.q_rows > shape.seq) {  // the last S of each [B, H, q_rows] row
    stats = base + AlignUp(rows * 4) + AlignUp(rows * shape.head_dim * 4);
    const float* first = lse.f32() + shape.skipped_queries();
    SL_CUDA_CHECK(cudaMemcpy2DAsync(stats, shape.seq * 4, first, shape.q_rows * 4, shape.seq * 4,
                                    shape.batch * shape.heads, cudaMemcpyDeviceToDevice, stream_));
  }
  // cuDNN zeroes dQ_accum itself from 9.6 on (cudnn_frontend 1.5 zeroed it always).
  if (cudnnGetVersion() < 90600 || plan->spelling->legacy) {
    SL_CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, rows * shape.head_dim * 4, stream_));
  }
  float scale_value = scale, lowest = std::numeric_limits<float>::lowest(), one = 1.0f;
  std::vector<std::pair<int64_t, void*>> pack = {
      {kUidQ, QueryRows(shape, q)},   {kUidK, KvRows(shape, k)},   {kUidV, KvRows(shape, v)},
      {kUidO, QueryRows(shape, out)}, {kUidDout, QueryRows(shape, dout)}, {kUidStats, stats},
      {kUidDq, QueryRows(shape, dq)}, {kUidDk, KvRows(shape, dk)}, {kUidDv, KvRows(shape, dv)},
      {kUidDqAccum, dq_accum}, {kUidScale, &scale_value}, {kUidLowest, &lowest},
      {kUidOne, &one}};
  if (!plan->spelling->legacy) pack.push_back({kUidSoftmaxSum, softmax_sum});
  const std::string error = Execute(handle_, plan->plan, pack, base + plan->scratch_bytes);
  if (!error.empty()) Refuse(/*backward=*/true, shape, error);
  return error.empty();
}

const float* CudnnAttention::SoftmaxSum(const CudnnAttentionShape& shape, const void* workspace) {
  const Plan* plan = GetPlan(/*backward=*/true, shape, nullptr);
  SL_CHECK_MSG(plan != nullptr, absl::StrCat("no cuDNN backward plan for ", shape.ToString()));
  return plan->spelling->legacy ? nullptr : static_cast<const float*>(workspace);
}

}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDNN
