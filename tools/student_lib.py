"""The built-in math student in PyTorch: a tiny LLaMA with our engine's exact conventions, LoRA on
any linear layer, batched greedy decoding with a KV cache, and the export to our safetensors file.

Conventions (src/engine/ref/llama.ts, llama2.c's run.c): weights (out, in) row-major, per-layer
tensors of all layers concatenated; RMSNorm out = w * x / sqrt(mean(x^2) + eps), eps 1e-5;
RoPE rotates adjacent pairs (2i, 2i+1) of every head by pos / theta^(2i/HS), theta 10000;
attention scale 1/sqrt(HS); FFN w2(silu(w1 x) * w3 x); classifier shared with the embedding.

Initial weights are the engine's randomLlamaWeights(config, seed) (src/engine/model/random.ts):
mulberry32 uniform(-1, 1) draws in the order tokenEmbedding (scale 1), wq, wk, wv, wo, w1, w3
(scale 1/sqrt(dim)), w2 (scale 1/sqrt(hidden)), norms 1; each value rounded to float32.

Run with Debian's PyTorch (/usr/bin/python3); one thread.
"""

import json
import math
import os
import struct

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('OMP_NUM_THREADS', '1')

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)

PAD, BOS, EOS = 0, 1, 2
WEIGHT_NAMES = ['tokenEmbedding', 'rmsAtt', 'wq', 'wk', 'wv', 'wo', 'rmsFfn', 'w1', 'w2', 'w3',
                'rmsFinal', 'wcls']
LINEARS = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3']
# LoRA target names of the engine (src/engine/model/lora.ts) for each weight
TARGET_OF = {'wq': 'q', 'wk': 'k', 'wv': 'v', 'wo': 'o', 'w1': 'gate', 'w2': 'down', 'w3': 'up'}


# ---------------------------------------------------------------- tokenizer (src/engine/io/chartok.ts)
class CharTok:
    def __init__(self, chars):
        self.chars = chars
        self.by_char = {c: i + 3 for i, c in enumerate(chars)}
        self.vocab_size = len(chars) + 3

    def encode(self, text, bos=True, eos=True):
        ids = [BOS] if bos else []
        ids += [self.by_char[c] for c in text]
        if eos:
            ids.append(EOS)
        return ids

    def decode(self, ids):
        return ''.join(self.chars[i - 3] for i in ids if i >= 3)


# ---------------------------------------------------------------- init (randomLlamaWeights)
def mulberry32_uniform(seed, n):
    """n draws of the engine's uniformStream(seed): uniform(-1, 1), as float64."""
    out = np.empty(n, dtype=np.float64)
    a = seed & 0xFFFFFFFF
    M = 0xFFFFFFFF

    def imul(x, y):
        return (x * y) & M

    for i in range(n):
        a = (a + 0x6D2B79F5) & M
        t = a
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & M
        t &= M
        out[i] = (((t ^ (t >> 14)) & M) / 4294967296.0) * 2 - 1
    return out


def weight_sizes(c):
    C, H, L, V = c['dim'], c['hiddenDim'], c['nLayers'], c['vocabSize']
    KV = C * c['nKvHeads'] // c['nHeads']
    return dict(tokenEmbedding=V * C, rmsAtt=L * C, wq=L * C * C, wk=L * KV * C, wv=L * KV * C,
                wo=L * C * C, rmsFfn=L * C, w1=L * H * C, w2=L * C * H, w3=L * H * C, rmsFinal=C,
                wcls=V * C)


def random_llama_weights(c, seed):
    """Exactly src/engine/model/random.ts's randomLlamaWeights (float32 numpy arrays)."""
    s = weight_sizes(c)
    C, H = c['dim'], c['hiddenDim']
    order = [('tokenEmbedding', 1.0), ('wq', 1 / math.sqrt(C)), ('wk', 1 / math.sqrt(C)),
             ('wv', 1 / math.sqrt(C)), ('wo', 1 / math.sqrt(C)), ('w1', 1 / math.sqrt(C)),
             ('w3', 1 / math.sqrt(C)), ('w2', 1 / math.sqrt(H))]
    if not c['sharedClassifier']:
        order.append(('wcls', 1 / math.sqrt(C)))
    total = sum(s[n] for n, _ in order)
    u = mulberry32_uniform(seed, total)
    w, o = {}, 0
    for name, scale in order:
        # JS: a[i] = rnd() * scale, the double product stored into a Float32Array
        w[name] = (u[o:o + s[name]] * scale).astype(np.float32)
        o += s[name]
    for name in ['rmsAtt', 'rmsFfn', 'rmsFinal']:
        w[name] = np.ones(s[name], dtype=np.float32)
    if c['sharedClassifier']:
        w['wcls'] = w['tokenEmbedding']
    return w


# ---------------------------------------------------------------- model
class Llama(torch.nn.Module):
    """Parameters hold the engine's flat layout reshaped to (L, out, in)."""

    def __init__(self, c, flat):
        super().__init__()
        self.c = c
        C, H, L, V = c['dim'], c['hiddenDim'], c['nLayers'], c['vocabSize']
        NH, NKV = c['nHeads'], c['nKvHeads']
        self.HS = C // NH
        KV = NKV * self.HS
        shapes = dict(tokenEmbedding=(V, C), rmsAtt=(L, C), wq=(L, C, C), wk=(L, KV, C),
                      wv=(L, KV, C), wo=(L, C, C), rmsFfn=(L, C), w1=(L, H, C), w2=(L, C, H),
                      w3=(L, H, C), rmsFinal=(C,))
        self.p = torch.nn.ParameterDict({
            n: torch.nn.Parameter(torch.tensor(np.asarray(flat[n], dtype=np.float32)).reshape(sh).clone())
            for n, sh in shapes.items()})
        hs = self.HS
        inv = 1.0 / (c['ropeTheta'] ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))
        self.register_buffer('inv_freq', inv, persistent=False)
        self.lora = None  # dict weight name -> (A (L, r, in), B (L, out, r)), scale, dropout

    def flat(self):
        return {n: self.p[n].detach().reshape(-1).numpy().astype(np.float32) for n in self.p}

    def rope(self, x, pos):
        # x (B, T, NH, HS); pos (T,) long
        ang = pos.float()[:, None] * self.inv_freq[None, :]  # (T, HS/2)
        cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)

    def lin(self, name, l, x):
        y = x @ self.p[name][l].t()
        if self.lora is not None and name in self.lora['ab']:
            A, B = self.lora['ab'][name]
            xd = F.dropout(x, self.lora['dropout'], self.training) if self.lora['dropout'] > 0 else x
            y = y + self.lora['scale'] * ((xd @ A[l].t()) @ B[l].t())
        return y

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c['normEps']) * w

    def forward(self, tokens, hidden=False):
        """tokens (B, T) long → logits (B, T, V) (causal; positions 0..T-1)."""
        c = self.c
        B, T = tokens.shape
        NH, NKV, HS = c['nHeads'], c['nKvHeads'], self.HS
        x = self.p['tokenEmbedding'][tokens]
        pos = torch.arange(T)
        mask = torch.full((T, T), float('-inf')).triu(1)
        for l in range(c['nLayers']):
            h = self.rms(x, self.p['rmsAtt'][l])
            q = self.rope(self.lin('wq', l, h).view(B, T, NH, HS), pos).transpose(1, 2)
            k = self.rope(self.lin('wk', l, h).view(B, T, NKV, HS), pos).transpose(1, 2)
            v = self.lin('wv', l, h).view(B, T, NKV, HS).transpose(1, 2)
            if NKV != NH:
                k = k.repeat_interleave(NH // NKV, dim=1)
                v = v.repeat_interleave(NH // NKV, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(HS) + mask
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, NH * HS)
            x = x + self.lin('wo', l, y)
            h = self.rms(x, self.p['rmsFfn'][l])
            x = x + self.lin('w2', l, F.silu(self.lin('w1', l, h)) * self.lin('w3', l, h))
        x = self.rms(x, self.p['rmsFinal'])
        return x @ self.p['tokenEmbedding'].t()

    # ------------------------------------------------------------ LoRA
    def add_lora(self, targets, rank, alpha, dropout, seed):
        """A ~ engine createLora: uniform(-1,1)/sqrt(in) from mulberry32(seed), B = 0."""
        c = self.c
        L = c['nLayers']
        u = None
        ab = {}
        draws = []
        for name in targets:
            out_, in_ = self.p[name].shape[1], self.p[name].shape[2]
            draws.append((name, out_, in_))
        total = L * sum(rank * i for _, _, i in draws)
        u = mulberry32_uniform(seed, total)
        As = {n: np.zeros((L, rank, i), np.float32) for n, _, i in draws}
        o = 0
        for l in range(L):  # engine order: layer-major, then target
            for name, out_, in_ in draws:
                As[name][l] = (u[o:o + rank * in_] / math.sqrt(in_)).astype(np.float32).reshape(rank, in_)
                o += rank * in_
        for name, out_, in_ in draws:
            A = torch.nn.Parameter(torch.tensor(As[name]))
            Bm = torch.nn.Parameter(torch.zeros(L, out_, rank))
            ab[name] = (A, Bm)
        self.lora = {'ab': ab, 'scale': alpha / rank, 'dropout': dropout}
        for prm in self.p.values():
            prm.requires_grad_(False)
        return [t for pair in ab.values() for t in pair]

    def drop_lora(self):
        self.lora = None
        for prm in self.p.values():
            prm.requires_grad_(True)

    # ------------------------------------------------------------ greedy decoding with a KV cache
    @torch.no_grad()
    def greedy(self, prompts, max_new, stop=(EOS,)):
        """prompts: list of token lists (BOS first). Forwards all rows position by position
        (run.c's generate: prompt tokens are forced, then argmax). Returns generated ids per row
        (without the stop token)."""
        was = self.training
        self.eval()
        c = self.c
        Bn = len(prompts)
        NH, NKV, HS, L = c['nHeads'], c['nKvHeads'], self.HS, c['nLayers']
        lens = torch.tensor([len(p) for p in prompts])
        Tmax = int(lens.max()) + max_new
        Tmax = min(Tmax, c['maxSeqLen'])
        kc = torch.zeros(L, Bn, NKV, Tmax, HS)
        vc = torch.zeros(L, Bn, NKV, Tmax, HS)
        P = torch.zeros(Bn, Tmax, dtype=torch.long)
        for i, p in enumerate(prompts):
            P[i, :len(p)] = torch.tensor(p)
        out = [[] for _ in range(Bn)]
        done = torch.zeros(Bn, dtype=torch.bool)
        tok = P[:, 0]
        for pos in range(Tmax - 1):
            x = self.p['tokenEmbedding'][tok]  # (B, C)
            pt = torch.tensor([pos])
            for l in range(L):
                h = self.rms(x, self.p['rmsAtt'][l])
                q = self.rope(self.lin('wq', l, h).view(Bn, 1, NH, HS), pt)[:, 0]
                k = self.rope(self.lin('wk', l, h).view(Bn, 1, NKV, HS), pt)[:, 0]
                v = self.lin('wv', l, h).view(Bn, NKV, HS)
                kc[l, :, :, pos] = k
                vc[l, :, :, pos] = v
                kk, vv = kc[l, :, :, :pos + 1], vc[l, :, :, :pos + 1]
                if NKV != NH:
                    kk = kk.repeat_interleave(NH // NKV, dim=1)
                    vv = vv.repeat_interleave(NH // NKV, dim=1)
                att = torch.einsum('bhd,bhtd->bht', q, kk) / math.sqrt(HS)
                y = torch.einsum('bht,bhtd->bhd', att.softmax(-1), vv).reshape(Bn, NH * HS)
                x = x + self.lin('wo', l, y)
                h = self.rms(x, self.p['rmsFfn'][l])
                x = x + self.lin('w2', l, F.silu(self.lin('w1', l, h)) * self.lin('w3', l, h))
            x = self.rms(x, self.p['rmsFinal'])
            nxt = (x @ self.p['tokenEmbedding'].t()).argmax(-1)
            forced = pos + 1 < lens
            nxt = torch.where(forced, P[:, pos + 1], nxt)
            gen = ~forced & ~done
            if pos + 1 >= int(lens.max()):
                over = torch.tensor([len(o) >= max_new for o in out])
                done |= over
            for i in torch.nonzero(gen).flatten().tolist():
                if int(nxt[i]) in stop:
                    done[i] = True
                else:
                    out[i].append(int(nxt[i]))
            if bool(done.all()):
                break
            tok = nxt
        self.train(was)
        return out


# ---------------------------------------------------------------- batches and loss
def pack(seqs, loss_from=None):
    """seqs: token lists (BOS first). Returns inputs (B, T), targets (B, T), mask (B, T) with
    T = longest - 1; loss_from[b] = first target index t (in tokens) that carries loss (default 1)."""
    T = max(len(s) for s in seqs) - 1
    Bn = len(seqs)
    inp = torch.zeros(Bn, T, dtype=torch.long)
    tgt = torch.zeros(Bn, T, dtype=torch.long)
    msk = torch.zeros(Bn, T)
    for b, s in enumerate(seqs):
        n = len(s)
        inp[b, :n - 1] = torch.tensor(s[:-1])
        tgt[b, :n - 1] = torch.tensor(s[1:])
        start = 1 if loss_from is None else loss_from[b]
        msk[b, start - 1:n - 1] = 1.0
    return inp, tgt, msk


def masked_ce(logits, tgt, msk):
    """Mean cross-entropy over the tokens that carry loss (the engine's packBatch weighting)."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction='none')
    return (ce * msk.reshape(-1)).sum() / msk.sum()


# ---------------------------------------------------------------- safetensors export
def js_number(x):
    """JSON.stringify's text of a JS number (for the config: integers, 10000, 1e-5)."""
    if isinstance(x, bool):
        return 'true' if x else 'false'
    if float(x).is_integer() and abs(x) < 1e21:
        return str(int(x))
    r = repr(float(x))
    if 'e' in r:
        mant, exp = r.split('e')
        e = int(exp)
        if -7 < e < 21:  # JS prints plain decimals for 1e-6 <= |x| < 1e21
            from decimal import Decimal
            return format(Decimal(r), 'f')
        return f'{mant}e{"+" if e > 0 else "-"}{abs(e)}'
    return r


CONFIG_KEYS = ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'maxSeqLen',
               'ropeTheta', 'normEps', 'sharedClassifier']


def config_json(c):
    return '{' + ','.join(f'"{k}":{js_number(c[k])}' for k in CONFIG_KEYS) + '}'


def write_llama_safetensors(path, c, flat):
    """Byte-for-byte what src/engine/io/checkpoint.ts writeLlamaSafetensors(config, w) writes
    for a config object whose keys are in LlamaConfig's order."""
    names = [n for n in WEIGHT_NAMES if not (n == 'wcls' and c['sharedClassifier'])]
    meta = {'format': 'dust2gold-llama', 'config': config_json(c)}
    parts = ['"__metadata__":' + json.dumps(meta, separators=(',', ':'), ensure_ascii=False)]
    pos = 0
    blobs = []
    for n in names:
        a = np.ascontiguousarray(flat[n], dtype='<f4')
        nb = a.size * 4
        parts.append(f'"{n}":{{"dtype":"F32","shape":[{a.size}],"data_offsets":[{pos},{pos + nb}]}}')
        pos += nb
        blobs.append(a.tobytes())
    hdr = ('{' + ','.join(parts) + '}').encode('utf-8')
    padded = math.ceil((8 + len(hdr)) / 8) * 8 - 8
    hdr = hdr + b' ' * (padded - len(hdr))
    with open(path, 'wb') as f:
        f.write(struct.pack('<II', len(hdr) % 2**32, len(hdr) // 2**32))
        f.write(hdr)
        for b in blobs:
            f.write(b)


def read_llama_safetensors(path):
    with open(path, 'rb') as f:
        buf = f.read()
    n = struct.unpack('<Q', buf[:8])[0]
    hdr = json.loads(buf[8:8 + n])
    c = json.loads(hdr['__metadata__']['config'])
    flat = {}
    for k, v in hdr.items():
        if k == '__metadata__':
            continue
        b, e = v['data_offsets']
        flat[k] = np.frombuffer(buf[8 + n + b:8 + n + e], dtype='<f4').copy()
    if c['sharedClassifier']:
        flat['wcls'] = flat['tokenEmbedding']
    return c, flat


# ---------------------------------------------------------------- data and statistics
def read_jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(l) for l in f if l.strip()]


def wilson(k, n, z=1.96):
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, centre - half), min(1.0, centre + half))


def extract_answer(text):
    import re
    m = re.findall(r'The answer is (-?\d+)', text)
    return int(m[-1]) if m else None
