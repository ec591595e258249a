"""Sizing study driver: for one pre-trained student, fine-tune LoRA on D_pos (KD) and on D_neg (NEG)
with the same budget, evaluate greedy accuracy at each checkpoint on the held-out problems, and
record the Table-1-style overlap. Appends one record to tools/study/results.json and rewrites
tools/study/results.md (every configuration tried, failures included).

    /usr/bin/python3 tools/study/run_study.py --name A-206k --model M.safetensors --log M.log.json \
        --tokenizer T.json --train train.jsonl --test test.jsonl --steps 100,200,400,800 \
        --rank 8 --targets all --lr 2e-3 [--which pos,neg]
"""

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import kd_eval as K  # noqa: E402
import student_lib as S  # noqa: E402

RESULTS = HERE / 'results.json'
TABLE = HERE / 'results.md'


def render(records):
    lines = ['# Sizing study: every configuration tried', '',
             'Written by tools/study/run_study.py from results.json. Greedy accuracy on held-out problems '
             '(95% Wilson interval); KD = LoRA on the teacher\'s D_pos, NEG = on D_neg; overlap = problems '
             'solved by the KD model, by the NEG model, by both, and IoU, at the same step budget. '
             'Batch 16, loss on rationale + EOS, AdamW, linear warm-up (20 steps) then constant lr '
             '("const": each row is a run with that budget) or linear decay to 0 at the last row ("linear": '
             'only the last row of the run is a finished run).', '',
             '| run | world / data | model (params) | pre-train steps / held-out loss | probes facts/reading/parse | LoRA | '
             'steps | KD acc [95% CI] | NEG acc [95% CI] | pos/neg/both/IoU | note |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in records:
        m = r['model']
        pr = m.get('probes', {})
        probes = '/'.join(f"{pr[k]['acc']:.2f}" if k in pr else '-' for k in ['facts', 'reading', 'parse'])
        cps = sorted({int(s) for res in r['runs'].values() for s in res['checkpoints']})
        for s in cps:
            def cell(w):
                c = r['runs'].get(w, {}).get('checkpoints', {}).get(str(s))
                return f"{100 * c['acc']:.1f} [{100 * c['ci95'][0]:.1f}, {100 * c['ci95'][1]:.1f}]" if c else '-'
            ov = r.get('overlap', {}).get(str(s))
            ovs = f"{ov['a']}/{ov['b']}/{ov['both']}/{ov['iou']:.3f}" if ov else '-'
            lora = f"r{r['lora']['rank']} {r['lora']['targets']} lr {r['lora']['lr']} {r['lora'].get('sched', 'const')}"
            lines.append(f"| {r['name']} | {r.get('world', '')} | {m['desc']} ({m['params']}) | {m['steps']} / {m['heldout']} | "
                         f"{probes} | {lora} | {s} | {cell('pos')} | {cell('neg')} | {ovs} | "
                         f"{r.get('note', '')} |")
    return '\n'.join(lines) + '\n'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--name', required=True)
    ap.add_argument('--model', required=True)
    ap.add_argument('--log', required=True, help='the pre-training log (PREFIX.log.json)')
    ap.add_argument('--tokenizer', required=True)
    ap.add_argument('--train', required=True)
    ap.add_argument('--test', required=True)
    ap.add_argument('--steps', default='100,200,400,800')
    ap.add_argument('--which', default='pos,neg')
    ap.add_argument('--rank', type=int, default=8)
    ap.add_argument('--targets', default='all')
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--ntest', type=int, default=1000)
    ap.add_argument('--note', default='')
    ap.add_argument('--sched', default='const', choices=['const', 'linear'])
    ap.add_argument('--world', default='default world (2-3 steps), default error model')
    a = ap.parse_args()
    tok = S.CharTok(json.load(open(a.tokenizer, encoding='utf-8'))['chars'])
    train = S.read_jsonl(a.train)
    test = S.read_jsonl(a.test)[:a.ntest]
    plog = json.load(open(a.log, encoding='utf-8'))
    c = plog['config']
    rec = {'name': a.name, 'time': time.strftime('%Y-%m-%d %H:%M'), 'world': a.world, 'note': a.note,
           'model': {'desc': f"d{c['dim']} L{c['nLayers']} h{c['nHeads']} ff{c['hiddenDim']}",
                     'params': plog['params'], 'steps': plog.get('stepsDone', plog['steps']),
                     'heldout': plog['heldout'][-1][1], 'probes': plog.get('probes', {}),
                     'config': c, 'seconds': plog.get('seconds')},
           'lora': {'rank': a.rank, 'alpha': 2 * a.rank, 'targets': a.targets, 'lr': a.lr, 'batch': a.batch,
                    'dropout': 0.05, 'sched': a.sched},
           'testProblems': len(test), 'runs': {}}
    cps = [int(x) for x in a.steps.split(',')]
    for w in a.which.split(','):
        rec['runs'][w] = K.run(a.model, tok, train, test, w, a.rank, a.targets, a.lr, a.batch, cps, a.seed,
                               log=lambda m: print(m, flush=True), sched=a.sched)
    if 'pos' in rec['runs'] and 'neg' in rec['runs']:
        rec['overlap'] = {}
        for s in cps:
            pm = rec['runs']['pos']['checkpoints'][str(s)]['solvedMask']
            nm = rec['runs']['neg']['checkpoints'][str(s)]['solvedMask']
            rec['overlap'][str(s)] = K.overlap(pm, nm)
        print('overlap', rec['overlap'], flush=True)
    records = json.load(open(RESULTS, encoding='utf-8')) if RESULTS.exists() else []
    records.append(rec)
    with open(RESULTS, 'w', encoding='utf-8') as f:
        json.dump(records, f, ensure_ascii=False)
    TABLE.write_text(render(records), encoding='utf-8')


if __name__ == '__main__':
    main()
