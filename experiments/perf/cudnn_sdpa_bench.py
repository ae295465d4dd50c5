"""cuDNN's fused attention (through PyTorch's SDPA with the cuDNN backend) at the same shape
and FLOP count as attention_bench: the reference the issue compares our kernel against."""
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

B, H, T, D = (int(a) for a in (sys.argv[1:5] if len(sys.argv) >= 5 else (16, 12, 1024, 64)))
q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
           for _ in range(3))
fwd_flops = 4.0 * B * H * T * T * D / 2
for backend, name in ((SDPBackend.CUDNN_ATTENTION, "cudnn"), (SDPBackend.FLASH_ATTENTION, "flash")):
    try:
        with sdpa_kernel(backend):
            for _ in range(3):
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                out.backward(torch.ones_like(out))
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(20):
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.cuda.synchronize()
            fwd = (time.perf_counter() - t0) / 20
            grad = torch.randn_like(out)
            t0 = time.perf_counter()
            for _ in range(20):
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                out.backward(grad)
            torch.cuda.synchronize()
            both = (time.perf_counter() - t0) / 20
        print(f"  {name:16s} fwd {1e3 * fwd:7.3f} ms {fwd_flops / fwd / 1e12:6.1f} TFLOP/s | "
              f"fwd+bwd {1e3 * both:7.3f} ms {3.5 * fwd_flops / both / 1e12:6.1f} TFLOP/s")
    except RuntimeError as error:
        print(f"  {name}: unavailable ({str(error).splitlines()[0]})")
