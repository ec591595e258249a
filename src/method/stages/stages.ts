/**
 * The method's training stages (METHOD.md §1–4), each `(model, data, config) → adapters +
 * metrics`, the same from the CLI, a worker and the tests. Batches are drawn by a seeded shuffle
 * (each epoch a new permutation), the learning rate follows linear warm-up + decay, and every
 * step reports progress; `signal` cancels between steps (the adapters so far are returned).
 */
import type { BackendTensor } from '../../engine/backend/types.ts';
import type { Param } from '../../engine/autograd/tape.ts';
import { EngineError } from '../../engine/errors.ts';
import {
  createLora,
  destroyLora,
  loadLora,
  saveLora,
  uniformStream,
  type LoraAdapter,
  type LoraState,
} from '../../engine/model/lora.ts';
import {
  createNatUnit,
  defaultNatWidth,
  destroyNatUnit,
  loadNatUnit,
  saveNatUnit,
} from '../../engine/model/nat.ts';
import {
  createRankerHead,
  destroyRankerHead,
  loadRankerHead,
  saveRankerHead,
} from '../../engine/model/ranker.ts';
import { loraHook } from '../../engine/train/forward.ts';
import { natHook, type NatAlphas } from '../../engine/train/nat.ts';
import {
  contrastiveObjective,
  negativeObjective,
  nceObjective,
  rankerObjective,
  type PairExample,
  type SignedExample,
} from '../../engine/train/objectives.ts';
import { likelihoodObjective, Trainer, type Example, type Objective } from '../../engine/train/trainer.ts';
import { meanAlphas, withAlphaSums } from './alpha.ts';
import { BatchDrawer, questionPairs } from './batches.ts';
import { DEFAULT_STAGE, type StageConfig, type StageName } from './config.ts';
import { linearMixHook } from '../../engine/train/linmix.ts';
import { linearWarmupDecay } from './schedule.ts';
import { encodeExample } from './text.ts';
import type { StageAdapters, StageResult, StageRun, TrainItem } from './types.ts';

export * from './types.ts';
export { BatchDrawer, questionPairs } from './batches.ts';
export { linearMixHook } from '../../engine/train/linmix.ts';

function requireSide(items: readonly TrainItem[], side: 'positive' | 'negative', stage: StageName): void {
  if (items.length === 0) {
    throw new EngineError(
      'BAD_ARGUMENT',
      side === 'negative'
        ? `The ${stage} stage learns from wrong rationales, and this data set has none (D_neg is empty). Use a data set with incorrect teacher rationales.`
        : `The ${stage} stage learns from correct rationales, and this data set has none (D_pos is empty).`,
    );
  }
}

function loraOf<T extends BackendTensor>(
  run: StageRun<T>,
  c: StageConfig,
  state: LoraState | undefined,
  seed: number,
) {
  const be = run.model.be;
  return state
    ? loadLora(be, run.model.config, state)
    : createLora(
        be,
        run.model.config,
        { rank: c.rank, alpha: c.alpha, dropout: c.dropout, targets: c.targets },
        seed,
      );
}

function need<K extends keyof StageAdapters>(
  run: StageRun<BackendTensor>,
  key: K,
  what: string,
): NonNullable<StageAdapters[K]> {
  const v = run.inputs?.[key];
  if (!v) throw new EngineError('BAD_ARGUMENT', `The ${run.stage} stage needs ${what} first.`);
  return v as NonNullable<StageAdapters[K]>;
}

/** Runs one stage to the end (or until `signal` aborts) and returns its adapters as plain data. */
export async function runStage<T extends BackendTensor>(run: StageRun<T>): Promise<StageResult> {
  if (run.resume && run.resume.stage !== run.stage) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `this checkpoint belongs to the ${run.resume.stage} stage, not ${run.stage}.`,
    );
  }
  const c: StageConfig = run.resume ? run.resume.config : { ...DEFAULT_STAGE, ...run.config };
  /** The stage's own trainable parts from a checkpoint (resume), else from inputs where a stage continues one. */
  const own = run.resume?.adapters;
  const { model, tokenizer: tok } = run;
  const be = model.be;
  const enc = (it: TrainItem): Example =>
    encodeExample(tok, it.question, it.rationale, { lossOnPrompt: c.lossOnPrompt });
  const made: { destroy: () => void }[] = [];
  const keep = <A>(a: A, destroy: (a: A) => void): A => {
    made.push({ destroy: () => destroy(a) });
    return a;
  };
  const dropLora = (a: LoraAdapter<T>) => destroyLora(be, a);
  try {
    let params: Param<T>[];
    let objective: Objective<T, never>;
    let draw: () => unknown[];
    let save: () => Promise<StageAdapters>;
    const alphas: NatAlphas<T>[] = [];
    const seedItems = c.seed * 7 + 1;

    switch (run.stage) {
      case 'kd':
      case 'neg':
      case 'mix': {
        const items =
          run.stage === 'kd'
            ? run.data.pos
            : run.stage === 'neg'
              ? run.data.neg
              : [...run.data.pos, ...run.data.neg];
        requireSide(
          run.stage === 'neg' ? run.data.neg : run.data.pos,
          run.stage === 'neg' ? 'negative' : 'positive',
          run.stage,
        );
        const lora = keep(loraOf(run, c, own?.lora ?? run.inputs?.lora, c.seed), dropLora);
        params = lora.params;
        objective = likelihoodObjective(model, (tape, s, tr) => loraHook(tape, lora, s, tr)) as Objective<
          T,
          never
        >;
        const d = new BatchDrawer(items.map(enc), seedItems);
        draw = () => d.next(c.batchSize);
        save = async () => ({ lora: await saveLora(be, model.config, lora) });
        break;
      }
      case 'nat':
      case 'linmix': {
        requireSide(run.data.pos, 'positive', run.stage);
        const neg = keep(
          loadLora(be, model.config, need(run as never, 'neg', 'the negative LoRA (run the neg stage)')),
          dropLora,
        );
        const pos = keep(
          loraOf(run, { ...c, targets: neg.config.targets }, own?.lora ?? run.inputs?.lora, c.seed),
          dropLora,
        );
        if (run.stage === 'nat') {
          const unit = keep(
            (own?.nat ?? run.inputs?.nat)
              ? loadNatUnit(be, model.config, (own?.nat ?? run.inputs?.nat)!)
              : createNatUnit(
                  be,
                  model.config,
                  { du: c.du ?? defaultNatWidth(model.config), targets: neg.config.targets },
                  c.seed + 1,
                ),
            (u) => destroyNatUnit(be, u),
          );
          params = [...pos.params, ...unit.params];
          objective = withAlphaSums(
            model,
            likelihoodObjective(model, (tape, s, tr) =>
              natHook(tape, pos, neg, unit, { trainable: true, training: tr, seed: s }, alphas),
            ),
            alphas,
          ) as Objective<T, never>;
          save = async () => ({
            lora: await saveLora(be, model.config, pos),
            neg: await saveLora(be, model.config, neg),
            nat: await saveNatUnit(be, model.config, unit),
          });
        } else {
          params = pos.params;
          objective = likelihoodObjective(model, (tape, s, tr) =>
            linearMixHook(tape, pos, neg, s, tr),
          ) as Objective<T, never>;
          save = async () => ({
            lora: await saveLora(be, model.config, pos),
            neg: await saveLora(be, model.config, neg),
          });
        }
        const d = new BatchDrawer(run.data.pos.map(enc), seedItems);
        draw = () => d.next(c.batchSize);
        break;
      }
      case 'nce': {
        requireSide(run.data.pos, 'positive', run.stage);
        const neg = keep(
          loadLora(be, model.config, need(run as never, 'neg', 'the negative LoRA (run the neg stage)')),
          dropLora,
        );
        const pos = keep(
          loadLora(be, model.config, need(run as never, 'lora', "NAT's positive LoRA (run the nat stage)")),
          dropLora,
        );
        const unit = keep(
          loadNatUnit(
            be,
            model.config,
            need(run as never, 'nat', 'the NAT integration unit (run the nat stage)'),
          ),
          (u) => destroyNatUnit(be, u),
        );
        // the student is fresh (or the checkpoint's): NCE's inputs.lora is NAT's positive LoRA
        const student = keep(
          own?.lora
            ? loadLora(be, model.config, own.lora)
            : createLora(
                be,
                model.config,
                { rank: c.rank, alpha: c.alpha, dropout: c.dropout, targets: c.targets },
                c.seed + 2,
              ),
          dropLora,
        );
        params = student.params;
        objective = nceObjective(model, {
          teacher: (tape) => natHook(tape, pos, neg, unit, { trainable: false, training: false, seed: 0 }),
          negative: (tape) => loraHook(tape, neg, 0, false, true),
          student: (tape, s, tr) => loraHook(tape, student, s, tr),
        }) as Objective<T, never>;
        const d = new BatchDrawer(run.data.pos.map(enc), seedItems);
        draw = () => d.next(c.batchSize);
        save = async () => ({ lora: await saveLora(be, model.config, student) });
        break;
      }
      case 'rank':
      case 'cl': {
        const groups = questionPairs(run.data);
        if (groups.length === 0) {
          throw new EngineError(
            'BAD_ARGUMENT',
            `The ${run.stage} stage compares a correct and a wrong rationale of the same question, and no question in this data set has both.`,
          );
        }
        const rnd = uniformStream(seedItems + 5);
        const pick = <X>(xs: readonly X[]): X => xs[Math.floor(((rnd() + 1) / 2) * xs.length) % xs.length]!;
        const d = new BatchDrawer(groups, seedItems);
        // one positive and one negative of the question, drawn anew each time (METHOD.md §3)
        draw = () =>
          d.next(c.batchSize).map((g): PairExample => ({ pos: enc(pick(g.pos)), neg: enc(pick(g.neg)) }));
        const lora = keep(
          loraOf(
            run,
            c,
            run.stage === 'rank' ? (own?.rank ?? run.inputs?.rank) : (own?.lora ?? run.inputs?.lora),
            c.seed + 3,
          ),
          dropLora,
        );
        if (run.stage === 'rank') {
          const head = keep(
            own?.head ? loadRankerHead(be, own.head) : createRankerHead(be, model.config.dim, c.seed + 4),
            (h) => destroyRankerHead(be, h),
          );
          params = [...lora.params, ...head.params];
          objective = rankerObjective(model, head, (tape, s, tr) => loraHook(tape, lora, s, tr)) as Objective<
            T,
            never
          >;
          save = async () => ({
            rank: await saveLora(be, model.config, lora),
            head: await saveRankerHead(be, head),
          });
        } else {
          params = lora.params;
          objective = contrastiveObjective(
            model,
            (tape, s, tr) => loraHook(tape, lora, s, tr),
            c.margin,
          ) as Objective<T, never>;
          save = async () => ({ lora: await saveLora(be, model.config, lora) });
        }
        break;
      }
      case 'nt':
      case 'ul': {
        requireSide(run.data.pos, 'positive', run.stage);
        requireSide(run.data.neg, 'negative', run.stage);
        const lora = keep(loraOf(run, c, own?.lora ?? run.inputs?.lora, c.seed), dropLora);
        params = lora.params;
        objective = negativeObjective(
          model,
          (tape, s, tr) => loraHook(tape, lora, s, tr),
          run.stage,
          c.gamma,
        ) as Objective<T, never>;
        // half positives, half negatives per step
        const dp = new BatchDrawer(
          run.data.pos.map((it): SignedExample => ({ ...enc(it), negative: false })),
          seedItems,
        );
        const dn = new BatchDrawer(
          run.data.neg.map((it): SignedExample => ({ ...enc(it), negative: true })),
          seedItems + 1,
        );
        const half = Math.max(1, Math.floor(c.batchSize / 2));
        draw = () => [...dp.next(c.batchSize - half), ...dn.next(half)];
        save = async () => ({ lora: await saveLora(be, model.config, lora) });
        break;
      }
    }

    const trainer = new Trainer<T, never>(
      be,
      params,
      {
        lr: c.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: c.weightDecay,
        maxGradNorm: c.maxGradNorm,
      },
      objective,
      c.seed,
      { recompute: c.recompute ?? false },
    );
    made.push({ destroy: () => trainer.destroy() });
    const warmup = Math.round(c.warmup * c.steps);
    const losses: number[] = [...(run.resume?.losses ?? [])];
    const history: StageResult['history'] = structuredClone(run.resume?.history ?? {});
    const start = run.resume?.step ?? 0;
    if (run.resume) {
      trainer.opt.load(run.resume.optimizer);
      for (let s = 0; s < start; s++) draw(); // the batches already seen: same order as before
    }
    const checkpoint = async (step: number) => {
      if (!run.onCheckpoint) return;
      await run.onCheckpoint({
        stage: run.stage,
        step,
        config: c,
        adapters: await save(),
        optimizer: await trainer.optimizerState(),
        losses: [...losses],
        history: structuredClone(history),
      });
    };
    let cancelled = false;
    for (let step = start; step < c.steps; step++) {
      await run.gate?.();
      if (run.signal?.aborted) {
        cancelled = true;
        break;
      }
      const lr = c.lr * linearWarmupDecay(step, c.steps, warmup);
      const t0 = performance.now();
      const r = await trainer.step(draw() as never[], {
        lr,
        ...(c.microBatch ? { microBatch: c.microBatch } : {}),
      });
      const metrics = meanAlphas(r.metrics, model.config.nLayers);
      if (typeof metrics['pairs'] === 'number')
        metrics['pair_acc'] = (metrics['pairs_right'] as number) / metrics['pairs'];
      for (const [k, v] of Object.entries(metrics)) (history[k] ??= []).push(v);
      losses.push(r.loss);
      run.onProgress?.({
        step: step + 1,
        steps: c.steps,
        loss: r.loss,
        gradNorm: r.gradNorm,
        lr,
        rate: r.tokens / ((performance.now() - t0) / 1000),
        metrics,
      });
      const every = run.checkpointEvery ?? 0;
      if (every > 0 && (step + 1) % every === 0 && step + 1 < c.steps) await checkpoint(step + 1);
    }
    if (!cancelled) await checkpoint(losses.length);
    return { stage: run.stage, config: c, adapters: await save(), losses, history, cancelled };
  } finally {
    for (const m of made.reverse()) m.destroy();
  }
}
