// Times cuBLASLt on the matrix products of one llama_160m training step (16 x 1024 tokens):
// for each shape, the heuristic's first algorithm (what GemmLt runs) and the fastest of its
// first 16 candidates, in ms and TFLOP/s, and the step's GEMM time summed both ways; plus
// the fused projection shapes (Q|K|V as one [3d, d] weight, gate|up as one [2f, d]) that a
// fused layout would run instead. Row-major d[m, n] = op(a) op(b) as GemmLt maps it.
//   build/experiments/perf/gemm_bench [tokens d ffn vocab layers]
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cuda_check.h"

namespace {

#define BENCH_CUBLAS(expr)                                                             \
  do {                                                                                 \
    const cublasStatus_t st = (expr);                                                  \
    if (st != CUBLAS_STATUS_SUCCESS) {                                                 \
      std::fprintf(stderr, "%s: %s\n", #expr, cublasLtGetStatusString(st));            \
      std::exit(1);                                                                    \
    }                                                                                  \
  } while (0)

struct Shape {
  std::string what;
  int64_t m, n, k;
  bool trans_a, trans_b, f32_out, beta;
  int per_step;  // how many times one training step runs it
};

struct Timing {
  float first_ms = 0, best_ms = 0;
  int candidates = 0;
};

float TimeAlgo(cublasLtHandle_t lt, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t la,
               cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t lc,
               const cublasLtMatmulAlgo_t& algo, const void* a, const void* b, void* c,
               float beta, void* ws, size_t ws_bytes) {
  const float alpha = 1.0f;
  cudaEvent_t start, stop;
  SL_CUDA_CHECK(cudaEventCreate(&start));
  SL_CUDA_CHECK(cudaEventCreate(&stop));
  if (cublasLtMatmul(lt, op, &alpha, b, la, a, lb, &beta, c, lc, c, lc, &algo, ws, ws_bytes,
                     0) != CUBLAS_STATUS_SUCCESS) {
    return -1.0f;
  }
  constexpr int kReps = 20;
  SL_CUDA_CHECK(cudaEventRecord(start));
  for (int i = 0; i < kReps; ++i) {
    BENCH_CUBLAS(cublasLtMatmul(lt, op, &alpha, b, la, a, lb, &beta, c, lc, c, lc, &algo, ws,
                                ws_bytes, 0));
  }
  SL_CUDA_CHECK(cudaEventRecord(stop));
  SL_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  SL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / kReps;
}

Timing Bench(cublasLtHandle_t lt, const Shape& s, void* a, void* b, void* c, void* ws,
             size_t ws_bytes) {
  const cudaDataType_t out = s.f32_out ? CUDA_R_32F : CUDA_R_16BF;
  cublasLtMatmulDesc_t op;
  BENCH_CUBLAS(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  BENCH_CUBLAS(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  BENCH_CUBLAS(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  cublasLtMatrixLayout_t la, lb, lc;
  BENCH_CUBLAS(s.trans_b ? cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, s.k, s.n, s.k)
                         : cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, s.n, s.k, s.n));
  BENCH_CUBLAS(s.trans_a ? cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, s.m, s.k, s.m)
                         : cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, s.k, s.m, s.k));
  BENCH_CUBLAS(cublasLtMatrixLayoutCreate(&lc, out, s.n, s.m, s.n));
  cublasLtMatmulPreference_t pref;
  BENCH_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
  BENCH_CUBLAS(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof(ws_bytes)));
  cublasLtMatmulHeuristicResult_t results[16];
  int found = 0;
  BENCH_CUBLAS(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 16, results, &found));
  Timing t;
  t.candidates = found;
  t.best_ms = 1e30f;
  const float beta = s.beta ? 1.0f : 0.0f;
  for (int i = 0; i < found; ++i) {
    const float ms = TimeAlgo(lt, op, la, lb, lc, results[i].algo, a, b, c, beta, ws, ws_bytes);
    if (ms < 0) continue;
    if (i == 0) t.first_ms = ms;
    t.best_ms = std::min(t.best_ms, ms);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(op);
  return t;
}

int Run(int argc, char** argv) {
  const int64_t T = argc > 1 ? std::atoll(argv[1]) : 16384, d = argc > 2 ? std::atoll(argv[2]) : 768;
  const int64_t f = argc > 3 ? std::atoll(argv[3]) : 2048, V = argc > 4 ? std::atoll(argv[4]) : 50304;
  const int L = argc > 5 ? std::atoi(argv[5]) : 12;
  // what, m, n, k, trans_a, trans_b, f32 out, beta, per step
  const std::vector<Shape> step = {
      {"fwd q/k/v", T, d, d, false, true, false, false, 3 * L},
      {"fwd o (+residual)", T, d, d, false, true, false, true, L},
      {"fwd gate/up", T, f, d, false, true, false, false, 2 * L},
      {"fwd down (+residual)", T, d, f, false, true, false, true, L},
      {"fwd lm head", T, V, d, false, true, false, false, 1},
      {"dx q/k/v/o", T, d, d, false, false, false, true, 4 * L},
      {"dx gate/up", T, d, f, false, false, false, true, 2 * L},
      {"dx down", T, f, d, false, false, false, false, L},
      {"dx lm head", T, d, V, false, false, false, false, 1},
      {"dw q/k/v/o", d, d, T, true, false, true, true, 4 * L},
      {"dw gate/up", f, d, T, true, false, true, true, 2 * L},
      {"dw down", d, f, T, true, false, true, true, L},
      {"dw lm head", V, d, T, true, false, true, true, 1},
  };
  const std::vector<Shape> fused = {
      {"fwd qkv fused", T, 3 * d, d, false, true, false, false, L},
      {"fwd gate|up fused", T, 2 * f, d, false, true, false, false, L},
      {"dx qkv fused", T, d, 3 * d, false, false, false, true, L},
      {"dx gate|up fused", T, d, 2 * f, false, false, false, true, L},
      {"dw qkv fused", 3 * d, d, T, true, false, true, true, L},
      {"dw gate|up fused", 2 * f, d, T, true, false, true, true, L},
  };
  size_t max_bytes = 0;
  for (const auto* list : {&step, &fused}) {
    for (const Shape& s : *list) {
      max_bytes = std::max({max_bytes, size_t(s.m * s.k * 2), size_t(s.k * s.n * 2),
                            size_t(s.m * s.n * 4)});
    }
  }
  void *a, *b, *c, *ws;
  const size_t ws_bytes = size_t{32} << 20;
  SL_CUDA_CHECK(cudaMalloc(&a, max_bytes));
  SL_CUDA_CHECK(cudaMalloc(&b, max_bytes));
  SL_CUDA_CHECK(cudaMalloc(&c, max_bytes));
  SL_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
  // Small nonzero values: bf16 0x3c00.. patterns, the same for every algorithm.
  SL_CUDA_CHECK(cudaMemset(a, 0x3c, max_bytes));
  SL_CUDA_CHECK(cudaMemset(b, 0x3b, max_bytes));
  SL_CUDA_CHECK(cudaMemset(c, 0, max_bytes));
  cublasLtHandle_t lt;
  BENCH_CUBLAS(cublasLtCreate(&lt));
  for (const auto* list : {&step, &fused}) {
    double first = 0, best = 0;
    std::printf("%-22s %6s %6s %6s %4s %9s %9s %9s %4s\n", "gemm", "m", "n", "k", "x", "first ms",
                "best ms", "best TF/s", "algs");
    for (const Shape& s : *list) {
      const Timing t = Bench(lt, s, a, b, c, ws, ws_bytes);
      const double tflops = 2.0 * s.m * s.n * s.k / (t.best_ms * 1e-3) / 1e12;
      std::printf("%-22s %6lld %6lld %6lld %4d %9.4f %9.4f %9.1f %4d\n", s.what.c_str(),
                  (long long)s.m, (long long)s.n, (long long)s.k, s.per_step, t.first_ms,
                  t.best_ms, tflops, t.candidates);
      first += t.first_ms * s.per_step;
      best += t.best_ms * s.per_step;
    }
    std::printf("per step: heuristic first %.3f ms, best %.3f ms\n\n", first, best);
  }
  cublasLtDestroy(lt);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
