"""Writes the small cross-check files the TypeScript tests read for the committed student:

  tests/fixtures/arith-student-greedy.json   prompts (corpus-style: facts, readings, parses) and
                                             PyTorch's greedy continuations (stop at newline/EOS)
  tests/fixtures/pretrain-50.json            adds "initProbe": values of randomLlamaWeights
                                             (first 4 and the float64 sum of 3 tensors)

    /usr/bin/python3 tools/study/export_checks.py --model public/models/arith-student.safetensors \
        --tokenizer public/models/arith-student.tokenizer.json --fixture tests/fixtures/pretrain-50.json
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import student_lib as S  # noqa: E402

PROMPTS = ['18 + 5 = ', '40 - 7 = ', '23 × 3 = ', '67 - 19 = ', 'She loses 5. → ', 'He gives 12 to Ann. → ',
           'He triples them. → ', 'Tom has 12 figs. He buys 3. She loses 5. He doubles them. '
           'How many figs does Tom have now? → ']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--tokenizer', required=True)
    ap.add_argument('--fixture', required=True)
    ap.add_argument('--greedy-out', default='tests/fixtures/arith-student-greedy.json')
    a = ap.parse_args()
    tok = S.CharTok(json.load(open(a.tokenizer, encoding='utf-8'))['chars'])
    c, flat = S.read_llama_safetensors(a.model)
    model = S.Llama(c, flat)
    nl = tok.by_char['\n']
    gens = model.greedy([tok.encode(p, True, False) for p in PROMPTS], 40, stop=(S.EOS, nl))
    out = {'about': 'greedy continuations of the committed student (PyTorch, tools/study/export_checks.py); '
                    'generation stops at a newline or EOS, neither included',
           'prompts': PROMPTS, 'outputs': [tok.decode(g) for g in gens]}
    print(out['outputs'])
    with open(a.greedy_out, 'w', encoding='utf-8') as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    fx = json.load(open(a.fixture, encoding='utf-8'))
    w = S.random_llama_weights(fx['config'], fx['initSeed'])
    fx['initProbe'] = {n: {'first': [float(x) for x in w[n][:4]], 'sum': float(w[n].astype('float64').sum())}
                      for n in ['tokenEmbedding', 'wq', 'w2']}
    with open(a.fixture, 'w', encoding='utf-8') as f:
        json.dump(fx, f, ensure_ascii=False, separators=(',', ':'))


if __name__ == '__main__':
    main()
