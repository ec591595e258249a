// Writes public/models/adapters/index.json from the stage folders `npm run d2g -- repro --save DIR`
// wrote (one folder per stage: safetensors + result.json). The app lists these as built-in students.
//   node tools/adapter-index.mjs public/models/adapters [kd neg nat nce rank ...]
import { readdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const NAMES = {
  kd: 'KD — CoT distillation on D_pos',
  neg: 'Negative LoRA — trained on D_neg',
  mix: 'MIX — D_pos ∪ D_neg',
  nat: 'NAT — positive LoRA + integration unit',
  nce: 'NCE — NAT + calibrated distillation',
  rank: 'Ranker — rank LoRA + head',
  nt: 'NT — negative-tagged',
  ul: 'UL — unlikelihood',
  cl: 'CL — contrastive',
  linmix: 'Linear mix (ablation)',
};

const [dir, ...only] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node tools/adapter-index.mjs <dir> [stage ...]');
  process.exit(2);
}
const stages = (only.length ? only : Object.keys(NAMES)).filter((s) =>
  existsSync(join(dir, s, 'result.json')),
);
const sets = stages.map((s) => {
  const files = readdirSync(join(dir, s)).sort();
  const r = JSON.parse(readFileSync(join(dir, s, 'result.json'), 'utf8'));
  const losses = r.losses ?? [];
  return {
    id: `builtin-${s}`,
    name: NAMES[s] ?? s,
    stage: s,
    dir: `models/adapters/${s}/`,
    files,
    bytes: files.reduce((n, f) => n + statSync(join(dir, s, f)).size, 0),
    summary: {
      steps: losses.length,
      first_loss: Number((losses[0] ?? NaN).toFixed(4)),
      last_loss: Number((losses.at(-1) ?? NaN).toFixed(4)),
      lr: r.config?.lr,
      batch: r.config?.batchSize,
    },
  };
});
// the full run's figures (d2g repro --out), shown by Compare, when they are in the folder
const repro = existsSync(join(dir, 'repro.json')) ? { repro: 'models/adapters/repro.json' } : {};
writeFileSync(
  join(dir, 'index.json'),
  JSON.stringify({ model: 'arith-student', ...repro, sets }, null, 1) + '\n',
);
console.log(`${dir}/index.json: ${sets.map((s) => s.stage).join(', ') || '(no stages)'}`);
