"""Median tokens/s of a sinklab run's metrics.jsonl (steps after the first `skip` logged
ones), with MFU by the benchmark's FLOP count (6 N + 12 L d T per token, N = parameters in
matrix products; H100 dense bf16 peak 989 TFLOP/s).
  python3 summarize.py RUN_DIR LABEL [N_MATMUL L D T [SKIP]]
GPUS=n in the environment (a data-parallel run on n GPUs): the run's tokens/s are the whole
global batch's; the line then also gives tokens/s and MFU per GPU."""
import json
import os
import statistics
import sys

run_dir, label = sys.argv[1], sys.argv[2]
n, layers, d, t = (int(x) for x in (sys.argv[3:7] if len(sys.argv) >= 7 else
                                     (123587328, 12, 768, 1024)))
skip = int(sys.argv[7]) if len(sys.argv) > 7 else 5
rates = []
with open(f"{run_dir}/metrics.jsonl") as f:
    for line in f:
        record = json.loads(line)
        if "tokens_per_s" in record and record.get("step", 0) > skip:
            rates.append(record["tokens_per_s"])
tps = statistics.median(rates)
mfu = tps * (6 * n + 12 * layers * d * t) / 989e12
gpus = int(os.environ.get("GPUS", "1"))
if gpus == 1:
    print(f"sinklab {label:24s} {tps:12,.0f} tokens/s  MFU {100 * mfu:5.1f}%  ({len(rates)} steps)")
else:
    print(f"sinklab {label:24s} {tps:12,.0f} tokens/s on {gpus} GPUs = {tps / gpus:,.0f} per GPU"
          f"  MFU {100 * mfu / gpus:5.1f}% per GPU  ({len(rates)} steps)")
