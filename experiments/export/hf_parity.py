"""Compares sinklab's logits with Hugging Face transformers' on exported checkpoints.

argv: ours.safetensors (tokens I32 [T], logits F32 [T, V] from `sinklab eval --logits_out`),
an f32 HF export, a bf16 HF export, and the run directory (for the TensorBoard check).
Prints the relative errors; exits non-zero when a tolerance is missed.
"""
import glob
import sys

import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def main():
    ours_path, f32_dir, bf16_dir, run_dir = sys.argv[1:5]
    ours = load_file(ours_path)
    tokens = ours["tokens"].long().unsqueeze(0)
    ours_logits = ours["logits"].double()
    ok = True
    # f32 weights in fp32 arithmetic: only summation order differs (CPU both sides).
    # bf16 weights (rounded by export) run in fp32: the error of rounding the weights.
    for name, folder, tolerance in (("f32", f32_dir, 1e-4), ("bf16", bf16_dir, 2e-2)):
        model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            hf_logits = model(tokens).logits[0].double()
        err = relative_error(hf_logits, ours_logits)
        max_abs = (hf_logits - ours_logits).abs().max().item()
        agree = (hf_logits.argmax(-1) == ours_logits.argmax(-1)).double().mean().item()
        print(f"{name} export: relative L2 error {err:.3e} (tolerance {tolerance:g}), "
              f"max |diff| {max_abs:.3e}, argmax agreement {agree:.4f}, "
              f"params {sum(p.numel() for p in model.parameters())}")
        ok &= err < tolerance
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = glob.glob(run_dir + "/events.out.tfevents.*")
    accumulator = EventAccumulator(run_dir)
    accumulator.Reload()
    scalars = accumulator.Tags()["scalars"]
    loss = [(e.step, round(e.value, 4)) for e in accumulator.Scalars("loss")]
    print(f"tensorboard: {len(events)} event file(s), scalar tags {sorted(scalars)}, loss {loss}")
    ok &= len(loss) == 2
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
