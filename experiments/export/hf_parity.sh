#!/usr/bin/env bash
# Export parity on the GPU machine (device tool; CPU build is enough): builds sinklab, trains
# configs/llama_160m.textproto for 2 steps on the bundled corpus (byte-level tokens) with
# TensorBoard logging, exports the checkpoint with --format hf (f32 and bf16), and checks with
# Python that transformers' LlamaForCausalLM loads both and that its logits on the first
# held-out sequence match `sinklab eval --logits_out`, and that tensorboard reads the event
# file. Usage (repo root, .device/debs holding Debian's libabsl-dev + libabsl20220623 .debs):
#   bash experiments/export/hf_parity.sh
set -euo pipefail
OUT=${OUT:-/tmp/hf_parity_out}
mkdir -p "$OUT"
absl=/tmp/absl
mkdir -p "$absl"
for deb in .device/debs/*.deb; do dpkg -x "$deb" "$absl"; done
export CMAKE_PREFIX_PATH="$absl/usr"
export LD_LIBRARY_PATH="$absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
export OMP_WAIT_POLICY=PASSIVE

cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DSINKLAB_CUDA=OFF > "$OUT/cmake.log"
ninja -C build-device sinklab > "$OUT/build.log"

runs=/tmp/hf_parity_runs
rm -rf "$runs" /tmp/hf_f32 /tmp/hf_bf16
build-device/sinklab train configs/llama_160m.textproto --device cpu \
  --set 'data { train_shards: "" val_shards: "" text_corpus: "data/corpus/kjv.txt" }' \
  --set "train { steps: 2 batch_size: 2 micro_batch_size: 1 eval_every: 0 eval_batches: 1 log_every: 1 run_root: \"$runs\" }" \
  --set 'optim { warmup_steps: 1 } stats { every: 0 } checkpoint { every: 0 } logging { tensorboard: true }'
run_dir=$(ls -d "$runs"/*/)
ckpt=$(ls -d "$run_dir"ckpt_*)
build-device/sinklab export "$ckpt" --format hf --dtype f32 --out /tmp/hf_f32
build-device/sinklab export "$ckpt" --format hf --dtype bf16 --out /tmp/hf_bf16
build-device/sinklab eval --weights "$ckpt" --batches 1 --device cpu --logits_out /tmp/ours.safetensors
PYTHONUNBUFFERED=1 python3 experiments/export/hf_parity.py /tmp/ours.safetensors /tmp/hf_f32 /tmp/hf_bf16 "$run_dir" | tee "$OUT/parity.txt"
