/** The synthetic arithmetic world: problems, the fallible teacher, the pre-training corpus, formats. */
export * from './rng.ts';
export * from './problems.ts';
export * from './format.ts';
export * from './teacher.ts';
export * from './corpus.ts';
