// `d2g repro --quick` on the built-in student and the synthetic teacher, end to end as a user runs
// it: every stage trains, every student is evaluated, votes and the ranker are measured; the JSON
// has every table with 95% intervals. (The figures of the full run are in the README.)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { ReproResult } from '../../src/method/experiments/result.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'd2g-repro-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function d2g(...args: string[]) {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', './tools/raw-hooks.mjs', 'src/cli/d2g.ts', ...args],
    { cwd: root, encoding: 'utf8', timeout: 600_000 },
  );
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('d2g repro --quick', () => {
  it('runs every experiment on the built-in student and prints the tables', () => {
    const data = join(dir, 'teacher.jsonl');
    expect(d2g('world', 'dataset', '--n', '300', '--seed', '1', '--out', data).code).toBe(0);
    const out = join(dir, 'repro.json');
    const save = join(dir, 'adapters');
    // --quick with 8 held-out problems and m = 2 (not 16 and 4): the same pipeline in half the time
    const quick = ['--quick', '--test', '8', '--m', '2'];
    const r = d2g('repro', ...quick, '--data', data, '--out', out, '--save', save);
    expect(r.code, r.err).toBe(0);
    for (const t of ['(a) Table 1', '(b) Table 2', '(c) voting', '(d) ranker']) expect(r.out).toContain(t);
    const j = JSON.parse(readFileSync(out, 'utf8')) as ReproResult;
    expect(j.n).toBe(8);
    expect(Object.keys(j.table2).sort()).toEqual([
      'base',
      'cl',
      'kd',
      'mix',
      'nat',
      'nat_kd',
      'nat_zero',
      'nce',
      'nt',
      'ul',
    ]);
    for (const [name, a] of Object.entries(j.table2)) {
      expect(a.n, name).toBe(8);
      expect(a.ci95[0]).toBeLessThanOrEqual(a.accuracy);
      expect(a.ci95[1]).toBeGreaterThanOrEqual(a.accuracy);
      if (name !== 'base') expect(Number.isFinite(a.last_loss), name).toBe(true);
      // 4 steps on different batches: only the stages that start far from their optimum surely fall
      if (name === 'kd' || name === 'nat') expect(a.last_loss!, `${name} trains`).toBeLessThan(a.first_loss!);
    }
    expect(j.voting.map((v) => v.m)).toEqual([1, 2]);
    for (const v of j.voting) expect(v.early_stop.mean_samples).toBeLessThanOrEqual(v.m);
    expect(j.table1.union).toBe(j.table1.pos + j.table1.neg - j.table1.both);
    expect(j.ranker!.pairs).toBeGreaterThan(0);
    expect(j.pending).toEqual([]);
    // --save: each stage's adapters, in the layout `train --out` writes and `eval --adapters` reads
    for (const [stage, file] of [
      ['kd', 'lora.safetensors'],
      ['nat', 'nat.safetensors'],
      ['nce', 'lora.safetensors'],
      ['rank', 'head.safetensors'],
    ] as const)
      expect(existsSync(join(save, stage, file)), `${stage}/${file}`).toBe(true);
    const ev = d2g('eval', '--data', data, '--adapters', join(save, 'nat'), '--limit', '4', '--max-new', '8');
    expect(ev.code, ev.err).toBe(0);
    // the same --save dir and budget again: every stage is read back, none trained again
    // (and the votes on the first of its 2 problems only)
    const again = d2g(
      'repro',
      ...['--quick', '--data', data, '--save', save, '--test', '2', '--m', '1', '--vote-problems', '1'],
    );
    expect(again.code, again.err).toBe(0);
    expect(again.err).toContain('reused nce');
    expect(again.err).not.toContain('trained ');
    expect(again.out).toContain('the first 1 problems');
    // --resume: a finished result has nothing left to run; one with other settings is refused
    const resumed = d2g('repro', ...quick, '--data', data, '--resume', out);
    expect(resumed.code, resumed.err).toBe(0);
    expect(resumed.err).toContain('resuming an earlier result: nothing to run');
    expect(resumed.err).not.toMatch(/trained |greedy |samples in/);
    expect(resumed.out).toContain(`| nat_zero | ${(100 * j.table2['nat_zero']!.accuracy).toFixed(1)} |`);
    const other = d2g('repro', '--quick', '--test', '8', '--m', '4', '--data', data, '--resume', out);
    expect(other.code).not.toBe(0);
    expect(other.err).toContain(`--resume ${out}: it was run with other settings (m differ)`);
    const notJson = d2g('repro', ...quick, '--data', data, '--resume', data);
    expect(notJson.err).toContain('not a repro result');
    const bad = d2g('repro', '--quick', '--data', data, '--vote-problems', '0');
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('--vote-problems 0: give how many held-out problems to vote on');
  }, 900_000);
});
