/**
 * Teacher datasets: parse (ours / the authors' / OpenAI's GSM8K solutions), split into D_pos / D_neg
 * by our answer checking, train / held-out by question, statistics. No file system: strings in, data out.
 *
 * @example
 *   const ds = parseDataset(text, { kind: 'math', name: 'teacher.jsonl' });
 *   const { train, heldOut } = heldOutSplit(ds, { fraction: 0.1, seed: 0 });
 *   const dNeg = requireNegatives(train, 'NAT');
 *   datasetStats(ds).labels.disagree;
 */
export {
  checkRationales,
  DATASET_FORMATS,
  detectFormat,
  isDatasetFormat,
  parseDataset,
  toOursJsonl,
  type Dataset,
  type DatasetFormat,
  type LoadIssue,
  type ParseOptions,
  type Problem,
  type Rationale,
} from './formats.ts';
export {
  DEFAULT_HELD_OUT,
  heldOutSplit,
  isHeldOut,
  labelDisagreements,
  questionHash,
  questionKey,
  requireNegatives,
  requirePositives,
  splitPosNeg,
  type HeldOutOptions,
  type LabelDisagreement,
  type PosNeg,
  type RationaleRef,
} from './split.ts';
export {
  datasetStats,
  type DatasetStats,
  type DisagreementExample,
  type PartCounts,
  type StatsOptions,
} from './stats.ts';
