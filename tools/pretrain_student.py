"""Pre-trains dust2gold's built-in math student (a tiny char-level LLaMA) on the world's corpus.

    npm run d2g -- world corpus --n 200000 --seed 11 --out /tmp/corpus.jsonl
    npm run d2g -- world corpus --n 2000 --seed 12 --out /tmp/heldout.jsonl
    npm run d2g -- world tokenizer --out /tmp/tok.json
    /usr/bin/python3 tools/pretrain_student.py --corpus /tmp/corpus.jsonl --heldout /tmp/heldout.jsonl \
        --tokenizer /tmp/tok.json --out public/models/arith-student --fixture tests/fixtures/pretrain-50.json

Deterministic on one thread: the initial weights are the engine's randomLlamaWeights(config, seed),
batch i is documents i·B .. i·B+B-1 of the corpus file (cycled), AdamW (PyTorch semantics) with
global-norm clipping, linear warm-up then cosine decay to 10 %. Writes PREFIX.safetensors (our
format, byte-compatible with writeLlamaSafetensors), PREFIX.tokenizer.json and PREFIX.log.json
(loss curve, held-out loss, probes); --fixture writes the first 50 steps for the engine's
cross-check (format in tests/fixtures/README.md).
"""

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import student_lib as S  # noqa: E402
import torch  # noqa: E402


def lr_at(step, total, peak, warmup, floor=0.1):
    """lr of optimizer step `step` (1-based)."""
    if step <= warmup:
        return peak * step / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def make_config(a, vocab):
    return dict(dim=a.dim, hiddenDim=a.hidden, nLayers=a.layers, nHeads=a.heads, nKvHeads=a.kv_heads,
                vocabSize=vocab, maxSeqLen=a.max_seq, ropeTheta=10000, normEps=1e-5,
                sharedClassifier=True)


@torch.no_grad()
def heldout_loss(model, tok, texts, bs=64):
    model.eval()
    tot, n = 0.0, 0.0
    for i in range(0, len(texts), bs):
        seqs = [tok.encode(t) for t in texts[i:i + bs]]
        inp, tgt, msk = S.pack(seqs)
        logits = model(inp)
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                               reduction='none')
        tot += float((ce * msk.reshape(-1)).sum())
        n += float(msk.sum())
    model.train()
    return tot / n


def probes(model, tok, heldout_docs, n=400):
    """Greedy completion accuracy of held-out facts, reading lines and parse exercises."""
    rng = random.Random(5)
    nl = tok.by_char['\n']
    out = {}
    items = {'facts': [], 'reading': [], 'parse': []}
    for d in heldout_docs:
        if d['kind'] in ('facts', 'reading'):
            for line in d['text'].split('\n'):
                sep = ' = ' if d['kind'] == 'facts' else ' → '
                a, b = line.rsplit(sep, 1)
                items[d['kind']].append((a + sep, b))
        elif d['kind'] == 'parse':
            a, b = d['text'].rsplit(' → ', 1)
            items['parse'].append((a + ' → ', b))
    for kind, xs in items.items():
        rng.shuffle(xs)
        xs = xs[:n]
        if not xs:
            continue
        gens = model.greedy([tok.encode(p, True, False) for p, _ in xs], 40, stop=(S.EOS, nl))
        ok = sum(tok.decode(g) == b for g, (_, b) in zip(gens, xs))
        out[kind] = {'n': len(xs), 'acc': ok / len(xs)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--corpus', required=True)
    ap.add_argument('--heldout', required=True)
    ap.add_argument('--tokenizer', required=True)
    ap.add_argument('--out', required=True, help='output prefix')
    ap.add_argument('--fixture', default=None)
    ap.add_argument('--dim', type=int, default=64)
    ap.add_argument('--hidden', type=int, default=176)
    ap.add_argument('--layers', type=int, default=4)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--kv-heads', type=int, default=4)
    ap.add_argument('--max-seq', type=int, default=256)
    ap.add_argument('--steps', type=int, default=3000)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--warmup', type=int, default=100)
    ap.add_argument('--beta2', type=float, default=0.99)
    ap.add_argument('--seed', type=int, default=20240101)
    ap.add_argument('--eval-every', type=int, default=250)
    ap.add_argument('--time-limit', type=float, default=1e9, help='stop after this many seconds')
    a = ap.parse_args()

    tok = S.CharTok(json.load(open(a.tokenizer, encoding='utf-8'))['chars'])
    docs = S.read_jsonl(a.corpus)
    texts = [d['text'] for d in docs]
    held_docs = S.read_jsonl(a.heldout)
    held = [d['text'] for d in held_docs]
    c = make_config(a, tok.vocab_size)
    model = S.Llama(c, S.random_llama_weights(c, a.seed))
    params = list(model.p.values())
    nparams = sum(p.numel() for p in params)
    adam = dict(lr=a.lr, beta1=0.9, beta2=a.beta2, eps=1e-8, weightDecay=0.0, maxGradNorm=1.0)
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, a.beta2), eps=1e-8, weight_decay=0.0)
    print(f'params {nparams}  config {c}', flush=True)

    log = {'config': c, 'params': nparams, 'initSeed': a.seed, 'adamw': adam, 'warmup': a.warmup,
           'steps': a.steps, 'batch': a.batch, 'schedule': 'linear warm-up, cosine to 10%',
           'corpusDocs': len(texts), 'losses': [], 'heldout': []}
    fixture = {'batches': [], 'losses': [], 'gradNorms': [], 'lrs': []}
    t0 = time.time()
    step = 0
    for step in range(1, a.steps + 1):
        i0 = ((step - 1) * a.batch) % len(texts)
        batch = [texts[(i0 + j) % len(texts)] for j in range(a.batch)]
        inp, tgt, msk = S.pack([tok.encode(t) for t in batch])
        lr = lr_at(step, a.steps, a.lr, a.warmup)
        for g in opt.param_groups:
            g['lr'] = lr
        loss = S.masked_ce(model(inp), tgt, msk)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        opt.step()
        log['losses'].append(round(float(loss), 5))
        if a.fixture and step <= 50:
            fixture['batches'].append(batch)
            fixture['losses'].append(float(loss))
            fixture['gradNorms'].append(gn)
            fixture['lrs'].append(lr)
            if step == 50:
                fixture['after50'] = {n: [float(model.p[n].detach().double().pow(2).sum().sqrt()),
                                          float(model.p[n].detach().reshape(-1)[0])]
                                      for n in S.WEIGHT_NAMES if n != 'wcls'}
        if step % 50 == 0:
            el = time.time() - t0
            print(f'step {step} loss {float(loss):.4f} lr {lr:.2e} gn {gn:.2f} {el:.0f}s', flush=True)
        if step % a.eval_every == 0 or step == a.steps:
            hl = heldout_loss(model, tok, held)
            log['heldout'].append([step, round(hl, 5)])
            print(f'  held-out loss {hl:.4f}', flush=True)
        if time.time() - t0 > a.time_limit:
            print(f'time limit at step {step}', flush=True)
            break
    log['stepsDone'] = step
    log['seconds'] = round(time.time() - t0, 1)
    if not log['heldout'] or log['heldout'][-1][0] != step:
        log['heldout'].append([step, round(heldout_loss(model, tok, held), 5)])
    log['probes'] = probes(model, tok, held_docs)
    print('probes', log['probes'], flush=True)

    out = Path(a.out)
    S.write_llama_safetensors(str(out) + '.safetensors', c, model.flat())
    with open(str(out) + '.tokenizer.json', 'w', encoding='utf-8') as f:
        json.dump({'type': 'char', 'chars': tok.chars}, f, ensure_ascii=False)
    with open(str(out) + '.log.json', 'w', encoding='utf-8') as f:
        json.dump(log, f, ensure_ascii=False)
    if a.fixture:
        fx = {
            'about': 'first 50 pre-training steps of the built-in student (tools/pretrain_student.py)',
            'config': c, 'initSeed': a.seed, 'init': 'randomLlamaWeights(config, initSeed)',
            'chars': tok.chars, 'adamw': adam,
            'packing': 'each text -> BOS + chars + EOS; pad (0) to the longest of the batch; '
                       'T = longest - 1; loss = mean cross-entropy over every non-pad target',
            **fixture,
        }
        with open(a.fixture, 'w', encoding='utf-8') as f:
            json.dump(fx, f, ensure_ascii=False, separators=(',', ':'))
    print('done', out, flush=True)


if __name__ == '__main__':
    main()
