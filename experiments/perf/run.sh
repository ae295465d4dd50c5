#!/usr/bin/env bash
# The GPU benchmark of issue "CUDA backend", run on the device machine from the repo root:
#   bash experiments/perf/run.sh [build | unpack] [gputest] [test] [profile] [bench] [multigpu]
#   (default: build gputest test bench)
# build:   CMake + Ninja for $CUDA_ARCHS (default "80;90a"; Abseil unpacked from .device/debs);
# unpack:  instead of build, the binaries experiments/perf/pack_build.sh packed on the
#          developer's machine (.device/bin; sm_90a): no build time on the device. Then
#          gputest runs each GPU test of the packed test programs in its own process (no
#          ctest files), and `test` is not available;
# gputest: the GPU tests only (every test named Cuda*; GPUTEST_FILTER, GPUTEST_SKIP narrow),
#          failures in full;
# test:    every ctest test (the GPU ones run here; they skip on machines without a GPU);
# profile: GPU time per kernel of one training step (ncu) of each variant named in
#          PROFILE_VARIANTS (labels as in bench; default baseline);
# bench: attention kernel TFLOP/s (ours, cuDNN's and FlashAttention's through PyTorch),
#        sinklab training tokens/s + MFU on configs/llama_160m.textproto (16 x 1024, bundled
#        corpus) for the baseline (model.attention.kernel AUTO: cuDNN's attention where
#        built; sinklab_kernels: ours), every mitigation, Muon, a stats-heavy run, and the
#        PyTorch baseline (torch.compile, bf16 autocast, fused AdamW, SDPA) of the same model.
#        Muon's batched Newton-Schulz alone on llama_160m's shape groups (newton_schulz).
#        cuBLASLt on each matrix product of a llama_160m step: heuristic's first vs best (gemm).
#        BENCH_RUNS="attention newton_schulz baseline muon torch ..." limits it to the runs named.
#        The SM clock and power while the sinklab runs train (nvidia-smi, clocks.csv).
#        tokens/s: the median over the logged intervals after step 5 (log_every
#        BENCH_LOG_EVERY, default 5; the host reads the step scalars only at logged steps).
# multigpu: on every GPU of the machine (one MPI rank each): the GPU data-parallel tests
#        (dist_cuda_tests: NCCL path vs one process, with and without ZeRO-1, resume), then
#        weak scaling: configs/llama_160m.textproto with 16 x 1024 tokens per GPU per step
#        (global batch 16 x GPUs), tokens/s per GPU at 1, 2, 4, ... GPUs for each label in
#        SCALING_RUNS (default "baseline muon zero1"; ctas8: baseline with NCCL_MAX_CTAS=8).
# Logs and results go to $OUT (or /tmp/perf_out).
set -uo pipefail
OUT=${OUT:-/tmp/perf_out}
mkdir -p "$OUT"
steps=${*:-build gputest test bench}
absl=/tmp/absl
mkdir -p "$absl"
for deb in .device/debs/*.deb; do dpkg -x "$deb" "$absl"; done
export CMAKE_PREFIX_PATH="$absl/usr"
export LD_LIBRARY_PATH="$absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
export OMP_WAIT_POLICY=PASSIVE NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
build=build-device
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
# SINKLAB_COMMIT: the commit as the caller names it (the device's copy of .git may lag).
echo "commit ${SINKLAB_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}" |
  tee -a "$OUT/device.txt"

if [[ " $steps " == *" build "* ]]; then
  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-80;90a}" \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
  ninja -C $build -j16 > "$OUT/build.log" 2>&1 || { grep -B2 -A12 -m3 "error" "$OUT/build.log"; exit 1; }
  echo "build ok"
fi

if [[ " $steps " == *" unpack "* ]]; then
  echo "packed build of $(tr '\n' ' ' < .device/bin/commit)"
  (cd .device/bin && find . -name '*.xz') | while read -r f; do
    mkdir -p "$build/$(dirname "$f")"
    xz -dc ".device/bin/$f" > "$build/${f%.xz}" && chmod +x "$build/${f%.xz}"
  done
  missing=$(ldd $build/sinklab $build/tests/*_tests | grep "not found" | sort -u)
  [[ -z "$missing" ]] || { echo "the packed binaries miss libraries: $missing"; exit 1; }
  echo "unpack ok"
fi

# Each GPU test (gtest name matching Cuda, and the extended regex GPUTEST_FILTER if set, not
# GPUTEST_SKIP) of the packed test programs in its own process, GPUTEST_JOBS (default 8) at a
# time with 16 / jobs OpenMP threads each, at most GPUTEST_TIMEOUT seconds each (default 600,
# ctest's limit). As each finishes, "PASS|FAIL <exit status> <seconds> <name>" goes to
# $OUT/gputest_passed.txt or gputest_failed.txt (a call cut short still tells which finished;
# status 124 is a timeout), a failure's output to gputest.log. The tests' timeouts stay in the
# caller's process group, so a `timeout` around this step stops them too.
packed_gputest() {
  local log="$OUT/gputest.log" fails="$OUT/gputest_failed.txt" passes="$OUT/gputest_passed.txt"
  : > "$log"; : > "$fails"; : > "$passes"
  for prog in $build/tests/*_tests; do
    $prog --gtest_list_tests | awk '/^[^ ]/ {suite = $1} /^  / {print suite $1}' |
      grep Cuda | grep -E "${GPUTEST_FILTER:-.}" | grep -vE "${GPUTEST_SKIP:-^$}" | sed "s|^|$prog |"
  done > "$OUT/gputest_list.txt"
  local jobs=${GPUTEST_JOBS:-8}
  export SINKLAB_ROOT=$PWD GPUTEST_TIMEOUT=${GPUTEST_TIMEOUT:-600}
  OMP_NUM_THREADS=$(( jobs < 16 ? 16 / jobs : 1 )) xargs -P "$jobs" -L 1 sh -c '
    t0=$(date +%s.%N)
    out=$(timeout --foreground "$GPUTEST_TIMEOUT" "$0" --gtest_filter="$1" 2>&1); rc=$?
    took=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" "BEGIN { printf \"%.1f\", t1 - t0 }")
    if [ $rc -eq 0 ]; then echo "PASS 0 $took $1" >> '"$passes"'
    else echo "FAIL $rc $took $1" >> '"$fails"'; printf "%s\n" "$out" >> '"$log"'; fi' \
    < "$OUT/gputest_list.txt"
  echo "gpu tests: $(wc -l < "$OUT/gputest_list.txt") listed, $(wc -l < "$passes") passed," \
    "$(wc -l < "$fails") failed"
  head -20 "$fails"
}

if [[ " $steps " == *" test "* ]]; then
  ctest --test-dir $build -j8 --timeout 300 --output-on-failure > "$OUT/ctest.log" 2>&1
  echo "ctest exit $?"; grep -E "tests passed|tests failed|\(Failed\)|\(SEGFAULT\)|\(Timeout\)|Subprocess aborted" "$OUT/ctest.log" | head -60
  grep -c "Passed" "$OUT/ctest.log" | sed 's/^/passed lines: /'
fi

if [[ " $steps " == *" gputest "* ]]; then
  if [[ ! -f $build/CTestTestfile.cmake ]]; then
    packed_gputest
  else
    # One process per test (ctest), so a CHECK abort fails that test only.
    ctest --test-dir $build -R "Cuda" -j4 --timeout 600 --output-on-failure > "$OUT/gputest.log" 2>&1
    echo "gpu tests exit $?"
    grep -E "tests passed|\(Failed\)|\(SEGFAULT\)|\(Timeout\)|Subprocess aborted" "$OUT/gputest.log" | head -40
  fi
  grep -E "Failure|Expected|Which is|CHECK failed|rel|  Actual" "$OUT/gputest.log" | head -${GPU_LOG_LINES:-60}
fi

# The --set fragment of each benchmarked variant (bench and profile), by label.
declare -A variant=(
  [baseline]='' [muon]='optim { matrix_optimizer: MUON }'
  [softmax1]='model { attention { normalizer: SOFTMAX1 } }'
  [sink_logit]='model { attention { normalizer: SINK_LOGIT } }'
  [softpick]='model { attention { normalizer: SOFTPICK } }'
  [sigmoid]='model { attention { normalizer: SIGMOID } }'
  [clipped_softmax]='model { attention { normalizer: CLIPPED_SOFTMAX } }'
  [gate_g1]='model { attention { gate { position: SDPA_OUTPUT } } }'
  [gate_g2_headwise]='model { attention { gate { position: VALUE granularity: HEADWISE } } }'
  [kv_bias]='model { attention { kv_bias: true } }'
  [prefix_tokens]='model { prefix_tokens: 4 }'
  [qk_norm]='model { attention { qk_norm: true } }'
  [stats_every_5]='stats { every: 5 }'
  [sinklab_kernels]='model { attention { kernel: SINKLAB } }')

if [[ " $steps " == *" profile "* ]]; then
  # GPU time per kernel of one training step (step 4: after warm-up and plan caching) of each
  # variant in PROFILE_VARIANTS (default: baseline).
  for label in ${PROFILE_VARIANTS:-baseline}; do
    SINKLAB_PROFILE_STEP=4 ncu --profile-from-start off --clock-control none --csv --print-units base \
      --metrics gpu__time_duration.sum --log-file "$OUT/ncu_$label.csv" $build/sinklab train \
      configs/llama_160m.textproto --device cuda \
      --set 'data { train_shards: "" val_shards: "" text_corpus: "data/corpus/kjv.txt" }' \
      --set 'train { steps: 4 batch_size: 16 micro_batch_size: 16 eval_every: 0 run_root: "/tmp/prof_runs" }' \
      --set 'stats { every: 0 } checkpoint { every: 0 } logging { tensorboard: false }' \
      --set "${variant[$label]}" > "$OUT/profile_train_$label.log" 2>&1 ||
      tail -5 "$OUT/profile_train_$label.log"
    echo "== profile $label"
    python3 experiments/perf/profile_summary.py "$OUT/ncu_$label.csv" ${PROFILE_TOP:-45} |
      tee "$OUT/profile_$label.txt"
  done
fi

if [[ -n "${EXTRA:-}" ]]; then eval "$EXTRA"; fi

if [[ " $steps " == *" bench "* ]]; then
  if [[ -z "${BENCH_RUNS:-}" || " $BENCH_RUNS " == *" attention "* ]]; then
    $build/experiments/perf/attention_bench 16 12 1024 64 | tee "$OUT/attention.txt"
    python3 experiments/perf/cudnn_sdpa_bench.py 16 12 1024 64 | tee -a "$OUT/attention.txt"
  fi
  if [[ -z "${BENCH_RUNS:-}" || " $BENCH_RUNS " == *" newton_schulz "* ]]; then
    $build/experiments/perf/newton_schulz_bench | tee "$OUT/newton_schulz.txt"
  fi
  if [[ -z "${BENCH_RUNS:-}" || " $BENCH_RUNS " == *" gemm "* ]]; then
    $build/experiments/perf/gemm_bench | tee "$OUT/gemm.txt"
  fi
  runs=/tmp/perf_runs; rm -rf $runs
  base=(--device cuda
    --set 'data { train_shards: "" val_shards: "" text_corpus: "data/corpus/kjv.txt" }'
    --set "train { steps: ${BENCH_STEPS:-25} batch_size: 16 micro_batch_size: 16 eval_every: 0 log_every: ${BENCH_LOG_EVERY:-5} run_root: \"$runs\" }"
    --set 'optim { warmup_steps: 5 } stats { every: 0 } checkpoint { every: 0 } logging { tensorboard: false }')
  bench() {  # label, extra --set fragments...
    local label=$1; shift
    if [[ -n "${BENCH_RUNS:-}" && " $BENCH_RUNS " != *" $label "* ]]; then return; fi
    local sets=(); for s in "$@"; do sets+=(--set "$s"); done
    local t0=$(date +%s.%N)
    if $build/sinklab train configs/llama_160m.textproto "${base[@]}" "${sets[@]}" --set "name: \"$label\"" \
        > "$OUT/train_$label.log" 2>&1; then
      python3 -c "import sys, time; print(sys.argv[1], time.time() - float(sys.argv[2]))" "$label" "$t0" >> "$OUT/wall.txt"
      python3 experiments/perf/summarize.py "$(ls -d $runs/$label*/ | head -1)" "$label" | tee -a "$OUT/bench.txt"
    else
      echo "sinklab $label FAILED: $(tail -3 "$OUT/train_$label.log")" | tee -a "$OUT/bench.txt"
    fi
  }
  # SM clock and power every 200 ms while the sinklab runs train: ncu times each kernel alone,
  # so a step longer than the profile's kernel sum is either gaps between kernels or lower
  # clocks under sustained load; this tells the second apart.
  nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,power.draw,utilization.gpu --format=csv,noheader,nounits \
    -lms 200 > "$OUT/clocks.csv" 2>/dev/null & clocks_pid=$!
  for label in baseline sinklab_kernels muon softmax1 sink_logit softpick sigmoid clipped_softmax gate_g1 \
      gate_g2_headwise kv_bias prefix_tokens qk_norm stats_every_5; do
    bench "$label" ${variant[$label]:+"${variant[$label]}"}
  done
  kill $clocks_pid 2>/dev/null
  python3 - "$OUT/clocks.csv" <<'PY' | tee -a "$OUT/bench.txt"
import sys
busy = []
for line in open(sys.argv[1]):
    try:
        sm, sm_max, watts, util = (float(x) for x in line.split(","))
    except ValueError:
        continue
    if util >= 90:
        busy.append((sm, sm_max, watts))
if busy:
    busy.sort()
    mid = busy[len(busy) // 2]
    print(f"SM clock while busy (>= 90% utilization, {len(busy)} samples): median {mid[0]:.0f} MHz, "
          f"min {busy[0][0]:.0f}, max clock {mid[1]:.0f} MHz; median power {sorted(b[2] for b in busy)[len(busy) // 2]:.0f} W")
PY
  # Statistics cost: the wall-time difference per stats step (every 5th step, plus the last
  # when steps is not a multiple of 5), as a fraction of the training time between stats
  # steps at the preset's interval (stats.every = 500) and the baseline's step time.
  [[ -z "${BENCH_RUNS:-}" || " $BENCH_RUNS " == *" stats_every_5 "* ]] &&
  python3 - "$OUT/wall.txt" "$OUT/bench.txt" ${BENCH_STEPS:-25} <<'PY' | tee -a "$OUT/bench.txt"
import re, sys
wall = dict(line.split() for line in open(sys.argv[1]))
rates = {m.group(1): float(m.group(2).replace(",", "")) for m in
         re.finditer(r"sinklab (\S+)\s+([\d,]+) tokens/s", open(sys.argv[2]).read())}
steps = int(sys.argv[3])
per_stats = (float(wall["stats_every_5"]) - float(wall["baseline"])) / (steps // 5 + (steps % 5 > 0))
step_s = 16 * 1024 / rates["baseline"]
print(f"stats step {per_stats:.3f} s = {100 * per_stats / (500 * step_s):.2f}% of training time "
      f"at stats.every=500 (train step {1000 * step_s:.1f} ms)")
PY
  [[ -z "${BENCH_RUNS:-}" || " $BENCH_RUNS " == *" torch "* ]] &&
  python3 experiments/perf/torch_baseline.py --batch 16 --seq 1024 --steps 20 2>&1 | tail -2 | tee -a "$OUT/bench.txt"
fi

if [[ " $steps " == *" multigpu "* ]]; then
  gpus=$(nvidia-smi -L | wc -l)
  mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH
       -x OMP_WAIT_POLICY -x OMPI_MCA_btl_vader_single_copy_mechanism=none)
  nvidia-smi topo -m | tee "$OUT/topology.txt"
  SINKLAB_ROOT=$PWD "${mpi[@]}" -x SINKLAB_ROOT -np "$gpus" $build/tests/dist_cuda_tests > "$OUT/multigpu_test.log" 2>&1
  echo "dist_cuda_tests on $gpus GPU(s): exit $?"
  grep -E "^\[  (PASSED|FAILED) |NCCL path on|zero1 resume|Failure|Expected|Which is|actual" \
    "$OUT/multigpu_test.log" | head -40
  runs=/tmp/scaling_runs; rm -rf $runs
  declare -A scaling=([baseline]='' [muon]='optim { matrix_optimizer: MUON }'
                      [zero1]='distributed { zero1: true }' [ctas8]='')
  declare -A scaling_env=([ctas8]='-x NCCL_MAX_CTAS=8')  # NCCL's SMs beside the backward
  for label in ${SCALING_RUNS:-baseline muon zero1}; do
    for ((n = 1; n <= gpus; n *= 2)); do
      name="${label}_${n}gpu"
      "${mpi[@]}" ${scaling_env[$label]:-} -np $n $build/sinklab train configs/llama_160m.textproto --device cuda \
        --set 'data { train_shards: "" val_shards: "" text_corpus: "data/corpus/kjv.txt" }' \
        --set "train { steps: ${BENCH_STEPS:-25} batch_size: $((16 * n)) micro_batch_size: 16 eval_every: 0 log_every: 1 run_root: \"$runs\" }" \
        --set 'optim { warmup_steps: 5 } stats { every: 0 } checkpoint { every: 0 } logging { tensorboard: false }' \
        ${scaling[$label]:+--set "${scaling[$label]}"} --set "name: \"$name\"" > "$OUT/scaling_$name.log" 2>&1 ||
        { echo "$name FAILED: $(tail -3 "$OUT/scaling_$name.log")"; continue; }
      GPUS=$n python3 experiments/perf/summarize.py "$(ls -d $runs/$name*/ | head -1)" "$name" |
        tee -a "$OUT/scaling.txt"
    done
  done
fi
