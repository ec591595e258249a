"""PyTorch fixture generator: a tiny LLaMA (GQA) with LoRA on q and v.

Writes tests/fixtures/tiny_llama_lora.json, the reference our TypeScript engine (CPU reference
and GPU) is checked against: logits, loss, every LoRA gradient, and 5 clipped AdamW steps.

Every input is drawn as float32 and stored exactly; the computation runs in float64 from those
exact values, and outputs are stored as float64. Conventions follow llama2.c's model.py
(weights (out, in) row-major, RoPE on adjacent pairs within each head, kv head = h // group).

Run from the repository root with Debian's PyTorch (see tests/fixtures/README.md):
    /usr/bin/python3 tools/make_fixtures.py
"""

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

OUT_PATH = Path(__file__).resolve().parent.parent / 'tests' / 'fixtures' / 'tiny_llama_lora.json'
SEED = 1234

CONFIG = dict(dim=32, hidden_dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=40,
              max_seq_len=16, rope_theta=10000.0, norm_eps=1e-5)
LORA = dict(rank=4, alpha=8.0, scale=2.0, dropout=0.0, targets=['q', 'v'])
ADAMW = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, max_grad_norm=1.0,
             steps=5)
B, T, PROMPT_LEN = 2, 10, 3

C, HID, L = CONFIG['dim'], CONFIG['hidden_dim'], CONFIG['n_layers']
NH, NKV, V = CONFIG['n_heads'], CONFIG['n_kv_heads'], CONFIG['vocab_size']
HS = C // NH
R = LORA['rank']
assert LORA['scale'] == LORA['alpha'] / LORA['rank']


# ----------------------------------------------------------------------------------------------
# inputs: float32 draws (exact), used in float64

gen = torch.Generator().manual_seed(SEED)


def uniform32(shape, lo, hi):
    """float32 values uniform in [lo, hi); the float32 value is the one stored and used."""
    u = torch.rand(shape, generator=gen, dtype=torch.float32)
    return (u * np.float32(hi - lo) + np.float32(lo)).to(torch.float32)


def make_weights():
    w = {'tok_embeddings': uniform32((V, C), -1.0, 1.0)}
    for l in range(L):
        p = f'layers.{l}.'
        w[p + 'attention_norm'] = uniform32((C,), 0.9, 1.1)
        w[p + 'wq'] = uniform32((NH * HS, C), -0.2, 0.2)
        w[p + 'wk'] = uniform32((NKV * HS, C), -0.2, 0.2)
        w[p + 'wv'] = uniform32((NKV * HS, C), -0.2, 0.2)
        w[p + 'wo'] = uniform32((C, NH * HS), -0.2, 0.2)
        w[p + 'ffn_norm'] = uniform32((C,), 0.9, 1.1)
        w[p + 'w1'] = uniform32((HID, C), -0.2, 0.2)
        w[p + 'w2'] = uniform32((C, HID), -0.2, 0.2)
        w[p + 'w3'] = uniform32((HID, C), -0.2, 0.2)
    w['norm'] = uniform32((C,), 0.9, 1.1)
    # ±0.33 puts the grad norms across max_grad_norm = 1: steps 1-2 unclipped, 3-5 clipped
    w['output'] = uniform32((V, C), -0.33, 0.33)
    return w


def make_lora():
    lora = {}
    for l in range(L):
        p = f'layers.{l}.'
        lora[p + 'q.A'] = uniform32((R, C), -0.2, 0.2)           # (R, in)
        lora[p + 'q.B'] = uniform32((NH * HS, R), -0.2, 0.2)     # (out, R)
        lora[p + 'v.A'] = uniform32((R, C), -0.2, 0.2)
        lora[p + 'v.B'] = uniform32((NKV * HS, R), -0.2, 0.2)
    return lora


def make_batch():
    seq = torch.randint(0, V, (B, T + 1), generator=gen, dtype=torch.int64)
    tokens, targets = seq[:, :T].clone(), seq[:, 1:].clone()
    mask = torch.ones(B, T, dtype=torch.int64)
    mask[:, :PROMPT_LEN] = 0  # the "prompt" carries no loss
    return tokens, targets, mask


# ----------------------------------------------------------------------------------------------
# model (float64)

def rmsnorm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(T_, hs, theta):
    """(T, hs/2) cos and sin: freq_i = theta^(-2i/hs), angle = pos * freq_i."""
    i = torch.arange(hs // 2, dtype=torch.float64)
    freq = 1.0 / theta ** (2.0 * i / hs)
    ang = torch.arange(T_, dtype=torch.float64)[:, None] * freq[None, :]
    return torch.cos(ang), torch.sin(ang)


def rope(x, cos, sin):
    """x (B, T, H, HS): rotate adjacent pairs (2i, 2i+1) of each head by angle[t, i]."""
    xr, xi = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([xr * c - xi * s, xr * s + xi * c], dim=-1).flatten(-2)


def rope_loop(x, theta):
    """Direct per-pair rotation loop: the independent check of rope()."""
    out = x.clone()
    b_, t_, h_, hs = x.shape
    for b in range(b_):
        for t in range(t_):
            for h in range(h_):
                for i in range(hs // 2):
                    ang = t * theta ** (-(2.0 * i) / hs)
                    x0, x1 = x[b, t, h, 2 * i].item(), x[b, t, h, 2 * i + 1].item()
                    out[b, t, h, 2 * i] = x0 * math.cos(ang) - x1 * math.sin(ang)
                    out[b, t, h, 2 * i + 1] = x0 * math.sin(ang) + x1 * math.cos(ang)
    return out


def attention(q, k, v):
    """q (B,T,NH,HS), k/v (B,T,NKV,HS) -> (B,T,NH*HS); causal, query head h uses kv h // group."""
    b_, t_, nh, hs = q.shape
    group = nh // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, NH, T, HS)
    att = q @ k.transpose(-1, -2) / math.sqrt(hs)
    causal = torch.ones(t_, t_, dtype=torch.bool).triu(1)
    att = att.masked_fill(causal, float('-inf')).softmax(-1)
    return (att @ v).transpose(1, 2).reshape(b_, t_, nh * hs)


def forward(w, lora, tokens, use_lora=True):
    """Logits (B, T, V). lora=None / use_lora=False gives the base model."""
    eps, s = CONFIG['norm_eps'], LORA['scale']
    b_, t_ = tokens.shape
    cos, sin = rope_cos_sin(t_, HS, CONFIG['rope_theta'])
    x = w['tok_embeddings'][tokens]
    for l in range(L):
        p = f'layers.{l}.'
        h = rmsnorm(x, w[p + 'attention_norm'], eps)
        q = h @ w[p + 'wq'].T
        k = h @ w[p + 'wk'].T
        v = h @ w[p + 'wv'].T
        if use_lora:
            # dropout is 0: drop(h) == h
            q = q + s * ((h @ lora[p + 'q.A'].T) @ lora[p + 'q.B'].T)
            v = v + s * ((h @ lora[p + 'v.A'].T) @ lora[p + 'v.B'].T)
        q = rope(q.view(b_, t_, NH, HS), cos, sin)
        k = rope(k.view(b_, t_, NKV, HS), cos, sin)
        v = v.view(b_, t_, NKV, HS)
        x = x + attention(q, k, v) @ w[p + 'wo'].T
        h2 = rmsnorm(x, w[p + 'ffn_norm'], eps)
        g = torch.nn.functional.silu(h2 @ w[p + 'w1'].T) * (h2 @ w[p + 'w3'].T)
        x = x + g @ w[p + 'w2'].T
    return rmsnorm(x, w['norm'], eps) @ w['output'].T


def masked_loss(logits, targets, mask):
    """Sum of CE over masked-in positions / number of masked-in positions (one batch mean)."""
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, targets[..., None])[..., 0]
    m = mask.to(torch.float64)
    return (nll * m).sum() / m.sum()


# ----------------------------------------------------------------------------------------------
# encoding

def enc_f32(t):
    a = t.detach().cpu().numpy()
    assert a.dtype == np.float32
    return {'shape': list(a.shape), 'f32': base64.b64encode(a.astype('<f4').tobytes()).decode()}


def enc_f64(t):
    a = np.asarray(t.detach().cpu().numpy() if torch.is_tensor(t) else t, dtype=np.float64)
    return {'shape': list(a.shape), 'f64': base64.b64encode(a.astype('<f8').tobytes()).decode()}


# ----------------------------------------------------------------------------------------------

def self_checks(w64, lora64, tokens):
    # RoPE: vectorised form == direct per-pair loop
    x = torch.randn(2, 5, 3, HS, generator=gen, dtype=torch.float64)
    cos, sin = rope_cos_sin(5, HS, CONFIG['rope_theta'])
    assert torch.allclose(rope(x, cos, sin), rope_loop(x, CONFIG['rope_theta']),
                          rtol=0, atol=1e-14), 'rope mismatch'
    # LoRA with B = 0 is the base model (exactly: the LoRA term adds zeros)
    zero_b = {k: (torch.zeros_like(v) if k.endswith('.B') else v) for k, v in lora64.items()}
    assert torch.equal(forward(w64, zero_b, tokens), forward(w64, None, tokens, use_lora=False))


def torch_adamw_reference(params, grads, state, step):
    """Hand-written AdamW (torch semantics) used to check torch.optim.AdamW below."""
    a = ADAMW
    out = []
    for p, g, (m, v) in zip(params, grads, state):
        p = p * (1 - a['lr'] * a['weight_decay'])
        m.mul_(a['beta1']).add_((1 - a['beta1']) * g)
        v.mul_(a['beta2']).add_((1 - a['beta2']) * g * g)
        bc1, bc2 = 1 - a['beta1'] ** step, 1 - a['beta2'] ** step
        denom = v.sqrt() / math.sqrt(bc2) + a['eps']
        out.append(p - (a['lr'] / bc1) * m / denom)
    return out


def main():
    w32, lora32 = make_weights(), make_lora()
    tokens, targets, mask = make_batch()
    w64 = {k: v.to(torch.float64) for k, v in w32.items()}
    lora_keys = list(lora32.keys())
    lora64 = {k: v.to(torch.float64).requires_grad_(True) for k, v in lora32.items()}

    self_checks(w64, {k: v.detach() for k, v in lora64.items()}, tokens)

    # forward + backward at the initial point
    logits = forward(w64, lora64, tokens)
    loss = masked_loss(logits, targets, mask)
    grads = torch.autograd.grad(loss, [lora64[k] for k in lora_keys])
    lora_grads = dict(zip(lora_keys, grads))

    # autograd vs finite differences (float64), on the loss as a function of all LoRA matrices
    def loss_of(*ps):
        return masked_loss(forward(w64, dict(zip(lora_keys, ps)), tokens), targets, mask)
    assert torch.autograd.gradcheck(loss_of, tuple(lora64[k] for k in lora_keys), eps=1e-6,
                                    atol=1e-8, rtol=1e-6)

    # 5 AdamW steps on the LoRA parameters only (base weights are plain tensors: frozen)
    params = [lora64[k].detach().clone().requires_grad_(True) for k in lora_keys]
    opt = torch.optim.AdamW(params, lr=ADAMW['lr'], betas=(ADAMW['beta1'], ADAMW['beta2']),
                            eps=ADAMW['eps'], weight_decay=ADAMW['weight_decay'], foreach=False)
    ref_params = [p.detach().clone() for p in params]
    ref_state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in ref_params]
    losses, norms = [], []
    for step in range(1, ADAMW['steps'] + 1):
        opt.zero_grad(set_to_none=True)
        step_loss = masked_loss(forward(w64, dict(zip(lora_keys, params)), tokens), targets, mask)
        step_loss.backward()
        raw = [p.grad.detach().clone() for p in params]
        # torch: total = ||all grads||_2; grads *= min(1, max_norm / (total + 1e-6))
        total = torch.nn.utils.clip_grad_norm_(params, max_norm=ADAMW['max_grad_norm'])
        # the hand-written reference clips the raw gradients itself
        ref_total = math.sqrt(sum(float((g * g).sum()) for g in raw))
        coef = min(1.0, ADAMW['max_grad_norm'] / (ref_total + 1e-6))
        clipped = [g * coef for g in raw]
        opt.step()
        ref_params = torch_adamw_reference(ref_params, clipped, ref_state, step)
        for p, rp in zip(params, ref_params):
            assert torch.allclose(p.detach(), rp, rtol=0, atol=1e-14), 'AdamW mismatch'
        assert abs(ref_total - total.item()) < 1e-12 * max(1.0, total.item())
        losses.append(step_loss.item())
        norms.append(total.item())
    assert losses[0] == loss.item()
    assert all(a > b for a, b in zip(losses, losses[1:])), 'losses must decrease'
    # both branches of clipping are exercised, with a margin float32 engines cannot blur
    assert any(n < 0.98 for n in norms) and any(n > 1.02 for n in norms), norms
    lora_final = dict(zip(lora_keys, (p.detach() for p in params)))

    fixture = {
        'seed': SEED,
        'config': CONFIG,
        'lora': LORA,
        'adamw': ADAMW,
        'weights': {k: enc_f32(v) for k, v in w32.items()},
        'lora_init': {k: enc_f32(v) for k, v in lora32.items()},
        'tokens': tokens.tolist(),
        'targets': targets.tolist(),
        'loss_mask': mask.tolist(),
        'logits': enc_f64(logits),
        'loss': enc_f64(loss),
        'lora_grads': {k: enc_f64(v) for k, v in lora_grads.items()},
        'adamw_losses': enc_f64(np.array(losses)),
        'adamw_grad_norms': enc_f64(np.array(norms)),
        'lora_final': {k: enc_f64(v) for k, v in lora_final.items()},
    }
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(fixture, indent=1)
    # keep lists of numbers and short strings (shapes, token rows, targets) on one line
    text = re.sub(r'\[([-0-9.,"a-z \n]*?)\]',
                  lambda m: '[' + re.sub(r',\s+', ', ', m[1].strip()) + ']', text)
    OUT_PATH.write_text(text + '\n')

    print(f'wrote {OUT_PATH} ({OUT_PATH.stat().st_size} bytes)')
    print(f'logits: mean {logits.mean().item():.4f} std {logits.std().item():.4f} '
          f'max|.| {logits.abs().max().item():.4f}')
    print(f'loss {loss.item()!r}')
    print('adamw losses', [repr(x) for x in losses])
    print('grad norms  ', [repr(x) for x in norms])


if __name__ == '__main__':
    main()
