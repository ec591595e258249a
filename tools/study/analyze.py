"""Per-problem-kind accuracy of the KD (D_pos) and NEG (D_neg) models of one study record, from the
solved masks in results.json and the test problems' kinds.

    /usr/bin/python3 tools/study/analyze.py --test test.jsonl --name A3-running-lr5e-3 --step 300
"""
import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--test', required=True)
    ap.add_argument('--name', required=True)
    ap.add_argument('--step', required=True)
    a = ap.parse_args()
    test = [json.loads(l) for l in open(a.test, encoding='utf-8') if l.strip()]
    rec = [r for r in json.load(open(HERE / 'results.json', encoding='utf-8')) if r['name'] == a.name][-1]
    masks = {w: rec['runs'][w]['checkpoints'][a.step]['solvedMask'] for w in rec['runs']}
    groups = {}
    for i, d in enumerate(test):
        steps, verbs = d['kind'].split(':')
        keys = [f'{steps} steps'] + [f'has {v}' for v in sorted(set(verbs.split(',')))]
        for k in keys:
            g = groups.setdefault(k, {'n': 0, **{w: 0 for w in masks}, 'only_neg': 0, 'only_pos': 0})
            g['n'] += 1
            for w, m in masks.items():
                g[w] += m[i] == '1'
            if 'pos' in masks and 'neg' in masks:
                g['only_neg'] += masks['neg'][i] == '1' and masks['pos'][i] == '0'
                g['only_pos'] += masks['pos'][i] == '1' and masks['neg'][i] == '0'
    out = {'name': a.name, 'step': a.step, 'groups': groups}
    lines = [f'| kind | n | ' + ' | '.join(f'{w} acc' for w in masks) + ' | only pos | only neg |',
             '|---|---|' + '---|' * len(masks) + '---|---|']
    for k, g in sorted(groups.items()):
        lines.append(f"| {k} | {g['n']} | " + ' | '.join(f"{100 * g[w] / g['n']:.1f}" for w in masks)
                     + f" | {g['only_pos']} | {g['only_neg']} |")
    print('\n'.join(lines))
    (HERE / f'kinds-{a.name}-{a.step}.json').write_text(json.dumps(out, indent=1), encoding='utf-8')


if __name__ == '__main__':
    main()
