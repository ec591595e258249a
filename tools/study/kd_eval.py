"""Sizing study, step 2: simulate the app's LoRA fine-tuning of the pre-trained student on the
teacher's rationales (KD = D_pos, NEG = D_neg, MIX = both) and measure greedy accuracy on held-out
problems at a few step budgets.

    /usr/bin/python3 tools/study/kd_eval.py --model M.safetensors --tokenizer T.json \
        --train train.jsonl --test test.jsonl --which pos --steps 200,400,800 --out kd.json

Text (METHOD.md §0): "Problem:\\n{x}\\nSolution:\\n{r}" + EOS, loss on rationale + EOS only.
LoRA (all linear layers by default), rank r, alpha 2r, dropout 0.05, A from mulberry32(seed)
like the engine's createLora, B = 0. AdamW (lr, betas 0.9/0.999, wd 0, clip 1), linear warm-up
then constant (so the checkpoint at step s is the run with budget s under a constant schedule).
Batches: the chosen rationales shuffled with Python's random.Random(seed), drawn in order, epoch
after epoch. One thread.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import student_lib as S  # noqa: E402
import torch  # noqa: E402

TARGETS = {'all': S.LINEARS, 'qv': ['wq', 'wv'], 'attn': ['wq', 'wk', 'wv', 'wo']}


def prompt_text(q):
    return f'Problem:\n{q}\nSolution:\n'


def examples(data, which, tok):
    out = []
    for d in data:
        for r in d['rationales']:
            if which == 'pos' and not r['correct']:
                continue
            if which == 'neg' and r['correct']:
                continue
            p = tok.encode(prompt_text(d['question']), True, False)
            out.append((p + tok.encode(r['text'], False, True), len(p)))
    return out


def evaluate(model, tok, test, max_new=90, bs=500):
    prompts = [tok.encode(prompt_text(d['question']), True, False) for d in test]
    gens = []
    for i in range(0, len(prompts), bs):
        gens += model.greedy(prompts[i:i + bs], max_new)
    texts = [tok.decode(g) for g in gens]
    ok = [S.extract_answer(t) == int(d['gold']) for t, d in zip(texts, test)]
    return ok, texts


def summary(ok, test):
    k, n = sum(ok), len(ok)
    lo, hi = S.wilson(k, n)
    by = {}
    for o, d in zip(ok, test):
        key = str(d.get('steps', '?'))
        by.setdefault(key, [0, 0])
        by[key][0] += o
        by[key][1] += 1
    return {'acc': k / n, 'ci95': [round(lo, 4), round(hi, 4)], 'solved': k, 'n': n,
            'bySteps': {s: round(a / b, 4) for s, (a, b) in sorted(by.items())}}


def run(model_path, tok, train, test, which, rank, targets, lr, batch, checkpoints, seed,
        warmup=20, dropout=0.05, log=print, sched='const'):
    """sched 'const': warm-up then constant lr (every checkpoint is a run with that budget);
    'linear': warm-up then linear decay to 0 at the last checkpoint (METHOD.md §0's schedule;
    only the last checkpoint is then a finished run)."""
    c, flat = S.read_llama_safetensors(model_path)
    model = S.Llama(c, flat)
    params = model.add_lora(TARGETS[targets], rank, 2.0 * rank, dropout, seed)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ex = examples(train, which, tok)
    rng = random.Random(seed)
    order = []
    total = max(checkpoints)
    res = {'which': which, 'rank': rank, 'targets': targets, 'lr': lr, 'batch': batch, 'sched': sched,
           'trainExamples': len(ex), 'loraParams': sum(p.numel() for p in params), 'checkpoints': {}}
    t0 = time.time()
    losses = []
    model.train()
    for step in range(1, max(checkpoints) + 1):
        if len(order) < batch:
            perm = list(range(len(ex)))
            rng.shuffle(perm)
            order += perm
        idx, order = order[:batch], order[batch:]
        seqs = [ex[i][0] for i in idx]
        inp, tgt, msk = S.pack(seqs, [ex[i][1] for i in idx])
        for g in opt.param_groups:
            g['lr'] = lr * min(1.0, step / warmup)
            if sched == 'linear' and step > warmup:
                g['lr'] = lr * (total - step + 1) / (total - warmup)
        loss = S.masked_ce(model(inp), tgt, msk)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss))
        if step in checkpoints:
            ok, texts = evaluate(model, tok, test)
            s = summary(ok, test)
            s['trainLoss'] = round(sum(losses[-50:]) / len(losses[-50:]), 4)
            s['seconds'] = round(time.time() - t0, 1)
            s['solvedMask'] = ''.join('1' if o else '0' for o in ok)
            s['samples'] = texts[:5]
            res['checkpoints'][str(step)] = s
            log(f'{which} r{rank} {targets} lr{lr} step {step}: acc {s["acc"]:.3f} {s["ci95"]} '
                f'loss {s["trainLoss"]} {s["bySteps"]} {s["seconds"]}s')
            model.train()
    res['losses'] = [round(x, 4) for x in losses]
    return res


def overlap(mask_a, mask_b):
    a = {i for i, ch in enumerate(mask_a) if ch == '1'}
    b = {i for i, ch in enumerate(mask_b) if ch == '1'}
    u = a | b
    return {'a': len(a), 'b': len(b), 'both': len(a & b), 'union': len(u),
            'iou': round(len(a & b) / len(u), 4) if u else 0.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--tokenizer', required=True)
    ap.add_argument('--train', required=True)
    ap.add_argument('--test', required=True)
    ap.add_argument('--which', default='pos', choices=['pos', 'neg', 'mix'])
    ap.add_argument('--rank', type=int, default=8)
    ap.add_argument('--targets', default='all', choices=list(TARGETS))
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--steps', default='200,400,800')
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--ntest', type=int, default=1000)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    tok = S.CharTok(json.load(open(a.tokenizer, encoding='utf-8'))['chars'])
    train = S.read_jsonl(a.train)
    test = S.read_jsonl(a.test)[:a.ntest]
    cps = [int(x) for x in a.steps.split(',')]
    res = run(a.model, tok, train, test, a.which, a.rank, a.targets, a.lr, a.batch, cps, a.seed,
              log=lambda m: print(m, flush=True))
    res['model'] = Path(a.model).name
    with open(a.out, 'w', encoding='utf-8') as f:
        json.dump(res, f, ensure_ascii=False)


if __name__ == '__main__':
    main()
