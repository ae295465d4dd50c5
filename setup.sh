#!/usr/bin/env bash
# Installs sinklab's dependencies (Debian/Ubuntu packages) and builds it in build/.
# CUDA is built when nvcc is found (SINKLAB_CUDA); set SINKLAB_CUDA=OFF to skip it and
# CUDA_ARCHS (default 90a: H100/H200 with the wgmma attention path; 90 without it, 80 for
# A100s; docs/GPU.md) to choose the GPU architectures.
# Usage: ./setup.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")"

packages=(build-essential cmake ninja-build pkg-config libopenmpi-dev openmpi-bin libabsl-dev
          libprotobuf-dev protobuf-compiler libgtest-dev libgmock-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

# nvcc is usually outside PATH in the standard CUDA prefix.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cuda_opts=()
if [ -n "${SINKLAB_CUDA:-}" ]; then cuda_opts+=("-DSINKLAB_CUDA=${SINKLAB_CUDA}"); fi
if command -v nvcc >/dev/null 2>&1; then
  cuda_opts+=("-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-90a}")
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_opts[@]}" "$@"
cmake --build build -j "$(nproc)"
