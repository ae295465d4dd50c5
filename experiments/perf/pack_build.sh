#!/usr/bin/env bash
# Packs this machine's sm_90(a) Release build for the device machine (run.sh's `unpack` step),
# so a device call can skip its own build: the binaries that run there (sinklab, the test
# programs with GPU tests, the benchmarks), stripped and xz-compressed into .device/bin
# (git-ignored; name .device in the call's carry). Debian 12's builds should run on the
# device's Ubuntu 24.04 (the same sonames), not yet tried there: `unpack` checks with ldd and
# says what is missing.
#   bash experiments/perf/pack_build.sh [build dir, default build]
set -euo pipefail
build=${1:-build}
grep -q 'CMAKE_CUDA_ARCHITECTURES[^=]*=.*90' "$build/CMakeCache.txt" ||
  { echo "$build is not built for sm_90" >&2; exit 1; }
ninja -C "$build" > /dev/null
rm -rf .device/bin && mkdir -p .device/bin
for b in sinklab tests/layers_tests tests/optim_tests tests/launch_tests tests/dist_cuda_tests \
    experiments/perf/attention_bench experiments/perf/gemm_bench experiments/perf/newton_schulz_bench; do
  mkdir -p ".device/bin/$(dirname "$b")"
  strip -o ".device/bin/$b" "$build/$b"
  xz -T0 -6 ".device/bin/$b"
done
git rev-parse --short HEAD > .device/bin/commit
git diff --quiet HEAD || echo "+uncommitted" >> .device/bin/commit
du -sh .device/bin
