"""Adds the weights after an earlier step to the pre-training fixture (tests/fixtures/pretrain-50.json).

    /usr/bin/python3 tools/pretrain_fixture_after.py --fixture tests/fixtures/pretrain-50.json --steps 20

The engine's cross-check (tests/gpu/pretrain-crosscheck.test.ts) trains fewer steps than the
fixture records (50 full-model steps take minutes on a software GPU). This replays the fixture's
own run from what the fixture holds (config, initSeed, batches, lrs, AdamW settings; no corpus
needed), asserts that the replay gives the recorded losses and gradient norms and, at step 50,
the recorded `after50`, and writes `after[N]`: weight name -> [L2 norm, first element] after step
N, as `after50` has them. One thread, so the replay is bit-for-bit the original run.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import student_lib as S  # noqa: E402
import torch  # noqa: E402


def snapshot(model):
    return {n: [float(model.p[n].detach().double().pow(2).sum().sqrt()),
                float(model.p[n].detach().reshape(-1)[0])]
            for n in S.WEIGHT_NAMES if n != 'wcls'}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--fixture', required=True)
    ap.add_argument('--steps', type=int, nargs='+', required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    fx = json.load(open(a.fixture, encoding='utf-8'))
    c, ad = fx['config'], fx['adamw']
    tok = S.CharTok(fx['chars'])
    model = S.Llama(c, S.random_llama_weights(c, fx['initSeed']))
    params = list(model.p.values())
    opt = torch.optim.AdamW(params, lr=ad['lr'], betas=(ad['beta1'], ad['beta2']), eps=ad['eps'],
                            weight_decay=ad['weightDecay'])
    after = {}
    last = len(fx['batches'])
    for step in range(1, last + 1):
        inp, tgt, msk = S.pack([tok.encode(t) for t in fx['batches'][step - 1]])
        for g in opt.param_groups:
            g['lr'] = fx['lrs'][step - 1]
        loss = S.masked_ce(model(inp), tgt, msk)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(params, ad['maxGradNorm']))
        opt.step()
        assert float(loss) == fx['losses'][step - 1], f'loss at step {step}: {float(loss)} vs {fx["losses"][step - 1]}'
        assert gn == fx['gradNorms'][step - 1], f'grad norm at step {step}'
        if step in a.steps:
            after[str(step)] = snapshot(model)
    assert snapshot(model) == fx['after50'], 'the replay does not end at the recorded after50'
    fx['after'] = {**fx.get('after', {}), **after}
    with open(a.fixture, 'w', encoding='utf-8') as f:
        json.dump(fx, f, ensure_ascii=False, separators=(',', ':'))
    print(f'replayed {last} steps bit-for-bit; wrote after[{", ".join(after)}]')


if __name__ == '__main__':
    main()
