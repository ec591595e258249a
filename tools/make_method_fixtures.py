"""PyTorch fixtures for the method's losses: NAT's integration unit, NCE, the ranker.

Writes tests/fixtures/method_fixtures.json. The base model, the batch and the positive LoRA are
those of tests/fixtures/tiny_llama_lora.json (tools/make_fixtures.py draws them in the same order
from the same seed); this script draws the rest (negative LoRA, NAT unit, NCE student, ranker
LoRA and head) after them, as float32, and computes in float64 (METHOD.md §1-3):

- NAT: logits, masked CE loss, its gradients w.r.t. LoRA_pos and the unit, α per (layer, site).
- NCE: student loss 0.5·CE + 0.5·KD with KD weighted by (0.5 + β), β = tanh(mean_t KL(p_N‖p_T))
  per sequence, teacher = the NAT model above, N = base + LoRA_neg; both CE and KD are means over
  all loss tokens of the batch; β and the gradients w.r.t. the student LoRA.
- Full fine-tuning: the base model's masked CE and its gradient w.r.t. every weight (stored as
  float32).
- Ranker: h = masked mean of the final hidden states (after the last RMSNorm) over rationale
  tokens, h1 = ELU(W1 h + b1) + h, h2 = ELU(W2 h1 + b2) + h1, s = σ(w·h2 + b); sequence 0 is the
  positive, sequence 1 the negative of one pair; loss (1 − s⁺)³ + (s⁻)³ and its gradients w.r.t.
  the ranker's LoRA and head.

Run from the repository root: /usr/bin/python3 tools/make_method_fixtures.py
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (seeds its generator on import)

OUT_PATH = Path(__file__).resolve().parent.parent / 'tests' / 'fixtures' / 'method_fixtures.json'
DU = 8  # NAT unit width
C, L, R = mf.C, mf.L, mf.R
OUT = {'q': mf.NH * mf.HS, 'v': mf.NKV * mf.HS}
u32 = mf.uniform32
f64 = lambda d: {k: v.to(torch.float64).requires_grad_(True) for k, v in d.items()}  # noqa: E731


def lora_draw():
    d = {}
    for l in range(L):
        for t in ('q', 'v'):
            d[f'layers.{l}.{t}.A'] = u32((R, C), -0.2, 0.2)
            d[f'layers.{l}.{t}.B'] = u32((OUT[t], R), -0.2, 0.2)
    return d


def unit_draw():
    d = {}
    for l in range(L):
        for t in ('q', 'v'):
            p = f'layers.{l}.{t}.'
            d[p + 'wq'] = u32((DU, C), -0.3, 0.3)
            d[p + 'wk'] = u32((DU, OUT[t]), -0.3, 0.3)
            d[p + 'wv1'] = u32((DU, OUT[t]), -0.3, 0.3)
            d[p + 'wv2'] = u32((OUT[t], DU), -0.3, 0.3)
    return d


def head_draw():
    return {'w1': u32((C, C), -0.2, 0.2), 'b1': u32((C,), -0.1, 0.1),
            'w2': u32((C, C), -0.2, 0.2), 'b2': u32((C,), -0.1, 0.1),
            'w': u32((1, C), -0.3, 0.3), 'b': u32((1,), -0.1, 0.1)}


def forward(w, tokens, site_fn, hidden=False):
    """The tiny LLaMA with a per-site function site_fn(l, t, h, base) -> output for q and v."""
    eps = mf.CONFIG['norm_eps']
    b_, t_ = tokens.shape
    cos, sin = mf.rope_cos_sin(t_, mf.HS, mf.CONFIG['rope_theta'])
    x = w['tok_embeddings'][tokens]
    for l in range(L):
        p = f'layers.{l}.'
        h = mf.rmsnorm(x, w[p + 'attention_norm'], eps)
        q = site_fn(l, 'q', h, h @ w[p + 'wq'].T)
        k = h @ w[p + 'wk'].T
        v = site_fn(l, 'v', h, h @ w[p + 'wv'].T)
        q = mf.rope(q.view(b_, t_, mf.NH, mf.HS), cos, sin)
        k = mf.rope(k.view(b_, t_, mf.NKV, mf.HS), cos, sin)
        v = v.view(b_, t_, mf.NKV, mf.HS)
        x = x + mf.attention(q, k, v) @ w[p + 'wo'].T
        h2 = mf.rmsnorm(x, w[p + 'ffn_norm'], eps)
        g = torch.nn.functional.silu(h2 @ w[p + 'w1'].T) * (h2 @ w[p + 'w3'].T)
        x = x + g @ w[p + 'w2'].T
    hf = mf.rmsnorm(x, w['norm'], eps)
    return hf if hidden else hf @ w['output'].T


def lora_fn(lora):
    s = mf.LORA['scale']
    return lambda l, t, h, base: base + s * ((h @ lora[f'layers.{l}.{t}.A'].T) @ lora[f'layers.{l}.{t}.B'].T)


def nat_fn(pos, neg, unit, alphas=None):
    s = mf.LORA['scale']
    gelu = torch.nn.functional.gelu  # exact (erf) form

    def fn(l, t, h, base):
        p = f'layers.{l}.{t}.'
        hpos = base + s * ((h @ pos[p + 'A'].T) @ pos[p + 'B'].T)
        hneg = base + s * ((h @ neg[p + 'A'].T) @ neg[p + 'B'].T)
        q = h @ unit[p + 'wq'].T
        kpos, kneg = hpos @ unit[p + 'wk'].T, hneg @ unit[p + 'wk'].T
        vpos = gelu(hpos @ unit[p + 'wv1'].T) @ unit[p + 'wv2'].T
        vneg = gelu(hneg @ unit[p + 'wv1'].T) @ unit[p + 'wv2'].T
        e = torch.stack([(q * kpos).sum(-1), (q * kneg).sum(-1)], -1)
        alpha = e.softmax(-1)[..., 1:] - 0.5
        if alphas is not None:
            alphas[f'layers.{l}.{t}'] = alpha[..., 0].detach().reshape(-1)
        return base + (1 - alpha) * vpos + alpha * vneg
    return fn


def main():
    # the draws of make_fixtures.main(), in its order, then ours
    w32, pos32 = mf.make_weights(), mf.make_lora()
    tokens, targets, mask = mf.make_batch()
    neg32, unit32, student32, rank32, head32 = lora_draw(), unit_draw(), lora_draw(), lora_draw(), head_draw()
    w = {k: v.to(torch.float64) for k, v in w32.items()}
    m = mask.to(torch.float64)
    ntok = m.sum()

    # --- NAT ---
    pos, unit = f64(pos32), f64(unit32)
    neg = {k: v.to(torch.float64) for k, v in neg32.items()}
    alphas = {}
    nat_logits = forward(w, tokens, nat_fn(pos, neg, unit, alphas))
    nat_loss = mf.masked_loss(nat_logits, targets, mask)
    keys_nat = list(pos) + list(unit)
    g = torch.autograd.grad(nat_loss, [pos[k] for k in pos] + [unit[k] for k in unit])
    nat_grads = dict(zip(['pos.' + k for k in pos] + ['unit.' + k for k in unit], g))
    assert len(keys_nat) == len(g)
    # W_V2 = 0 makes the unit the identity: the output is the base model's
    zero = {k: (torch.zeros_like(v) if k.endswith('wv2') else v.detach()) for k, v in unit.items()}
    base_logits = forward(w, tokens, lambda l, t, h, b: b)
    assert torch.allclose(forward(w, tokens, nat_fn(pos, neg, zero)), base_logits, atol=1e-14, rtol=0)

    # --- NCE ---
    student = f64(student32)
    with torch.no_grad():
        logp_t = forward(w, tokens, nat_fn(pos, neg, unit)).log_softmax(-1)
        logp_n = forward(w, tokens, lora_fn(neg)).log_softmax(-1)
    kl_t = (logp_n.exp() * (logp_n - logp_t)).sum(-1)  # (B, T) = KL(p_N || p_T) per position
    beta = torch.tanh((kl_t * m).sum(-1) / m.sum(-1))  # (B,)
    logp_s = forward(w, tokens, lora_fn(student)).log_softmax(-1)
    ce = mf.masked_loss(logp_s, targets, mask)
    kd_tok = -(logp_t.exp() * logp_s).sum(-1)  # (B, T)
    kd = (kd_tok * (0.5 + beta)[:, None] * m).sum() / ntok
    nce_loss = 0.5 * ce + 0.5 * kd
    g = torch.autograd.grad(nce_loss, [student[k] for k in student])
    nce_grads = dict(zip(student, g))

    # --- ranker ---
    rank, head = f64(rank32), f64(head32)
    rmask = torch.zeros(mf.B, mf.T, dtype=torch.float64)
    rmask[:, mf.PROMPT_LEN + 1:] = 1.0  # inputs that are rationale tokens (targets of loss positions)
    hid = forward(w, tokens, lora_fn(rank), hidden=True)
    h = (hid * rmask[..., None]).sum(1) / rmask.sum(1)[:, None]
    elu = torch.nn.functional.elu
    h1 = elu(h @ head['w1'].T + head['b1']) + h
    h2 = elu(h1 @ head['w2'].T + head['b2']) + h1
    z = (h2 @ head['w'].T + head['b'])[:, 0]
    s = torch.sigmoid(z)
    rank_loss = (1 - s[0]) ** 3 + s[1] ** 3
    g = torch.autograd.grad(rank_loss, [rank[k] for k in rank] + [head[k] for k in head])
    rank_grads = dict(zip(['lora.' + k for k in rank] + ['head.' + k for k in head], g))

    # --- full fine-tuning: gradient of the base model's masked CE w.r.t. every weight ---
    wfull = {k: v.to(torch.float64).requires_grad_(True) for k, v in w32.items()}
    full_loss = mf.masked_loss(forward(wfull, tokens, lambda l, t, h, b: b), targets, mask)
    g = torch.autograd.grad(full_loss, list(wfull.values()))
    full_grads = dict(zip(wfull, g))

    enc = mf.enc_f64
    fixture = {
        'about': 'tools/make_method_fixtures.py; base model, batch and LoRA_pos: tiny_llama_lora.json',
        'du': DU,
        'neg_lora': {k: mf.enc_f32(v) for k, v in neg32.items()},
        'unit': {k: mf.enc_f32(v) for k, v in unit32.items()},
        'student_lora': {k: mf.enc_f32(v) for k, v in student32.items()},
        'rank_lora': {k: mf.enc_f32(v) for k, v in rank32.items()},
        'head': {k: mf.enc_f32(v) for k, v in head32.items()},
        'rank_mask': rmask.tolist(),
        'nat': {'logits': enc(nat_logits), 'loss': enc(nat_loss),
                'alphas': {k: enc(v) for k, v in alphas.items()},
                'grads': {k: enc(v) for k, v in nat_grads.items()}},
        'nce': {'kl': enc(kl_t), 'beta': enc(beta), 'loss': enc(nce_loss), 'ce': enc(ce), 'kd': enc(kd),
                'grads': {k: enc(v) for k, v in nce_grads.items()}},
        'full': {'loss': enc(full_loss),
                 # float32 is enough for a 1e-4 relative check and halves the file
                 'grads': {k: mf.enc_f32(v.to(torch.float32)) for k, v in full_grads.items()}},
        'rank': {'scores': enc(s), 'loss': enc(rank_loss),
                 'grads': {k: enc(v) for k, v in rank_grads.items()}},
    }
    text = json.dumps(fixture, indent=1)
    text = re.sub(r'\[([-0-9.,"a-z \n]*?)\]',
                  lambda mm: '[' + re.sub(r',\s+', ', ', mm[1].strip()) + ']', text)
    OUT_PATH.write_text(text + '\n')
    print(f'wrote {OUT_PATH} ({OUT_PATH.stat().st_size} bytes)')
    print('nat loss', nat_loss.item(), 'alpha range', min(a.min().item() for a in alphas.values()),
          max(a.max().item() for a in alphas.values()))
    print('nce loss', nce_loss.item(), 'beta', beta.tolist())
    print('rank loss', rank_loss.item(), 'scores', s.tolist())


if __name__ == '__main__':
    main()
