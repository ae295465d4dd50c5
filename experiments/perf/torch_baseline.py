"""PyTorch baseline of the sinklab Llama for experiments/perf/run.sh.

The identical model to configs/llama_160m.textproto (RMSNorm, RoPE rotate-half, causal
multi-head attention through scaled_dot_product_attention, SwiGLU, untied LM head), trained
the way a careful PyTorch user would: torch.compile, bf16 autocast, fused AdamW, fp32 master
weights. Prints tokens/s and MFU with the same FLOP count as sinklab's benchmark:
6 N + 12 L d T per token, N = parameters in matrix products (all but the input embedding).

  python3 torch_baseline.py --batch 16 --seq 1024 --steps 30
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

H100_PEAK_BF16 = 989e12  # dense bf16 TFLOP/s of an H100 SXM (the MFU reference)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight).to(x.dtype)


def rope_tables(seq, head_dim, theta, device):
    inv = theta ** (-torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    angles = torch.outer(torch.arange(seq, device=device).float(), inv)  # [T, d/2]
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):  # x [B, H, T, d]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[None, None].to(x.dtype), sin[None, None].to(x.dtype)
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, ffn, eps):
        super().__init__()
        self.heads = heads
        self.attn_norm = RMSNorm(d, eps)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ffn_norm = RMSNorm(d, eps)
        self.w_gate = nn.Linear(d, ffn, bias=False)
        self.w_up = nn.Linear(d, ffn, bias=False)
        self.w_down = nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        h = self.attn_norm(x)
        shape = (b, t, self.heads, d // self.heads)
        q = self.wq(h).view(shape).transpose(1, 2)
        k = self.wk(h).view(shape).transpose(1, 2)
        v = self.wv(h).view(shape).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.wo(a.transpose(1, 2).reshape(b, t, d))
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Llama(nn.Module):
    def __init__(self, vocab, d, layers, heads, ffn, seq, theta=10000.0, eps=1e-5, std=0.02):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads, ffn, eps) for _ in range(layers))
        self.norm = RMSNorm(d, eps)
        self.head = nn.Linear(d, vocab, bias=False)
        cos, sin = rope_tables(seq, d // heads, theta, "cpu")
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                scale = 1 / math.sqrt(2 * layers) if name.endswith(("wo.weight", "w_down.weight")) else 1
                nn.init.normal_(p, std=std * scale)

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--ffn", type=int, default=2048)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()

    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    dev = "cuda"
    model = Llama(args.vocab, args.d, args.layers, args.heads, args.ffn, args.seq).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=True)
    step_fn = model if args.no_compile else torch.compile(model)
    tokens = torch.randint(0, 256, (args.batch, args.seq + 1), device=dev)
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_fn(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start

    n_matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2) - \
        model.embed.weight.numel()
    tokens_per_step = args.batch * args.seq
    flops_per_token = 6 * n_matmul + 12 * args.layers * args.d * args.seq
    tps = tokens_per_step * args.steps / elapsed
    mfu = tps * flops_per_token / H100_PEAK_BF16
    print(f"torch_baseline: {tps:,.0f} tokens/s  MFU {100 * mfu:.1f}%  "
          f"({1000 * elapsed / args.steps:.1f} ms/step, loss {loss.item():.3f}, "
          f"compile={not args.no_compile}, N_matmul={n_matmul:,})")


if __name__ == "__main__":
    main()
