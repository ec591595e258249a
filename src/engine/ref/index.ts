// Every op of the engine, one module per op id (docs/engine.md).
export * from './adamw.ts';
export * from './attention.ts';
export * from './crossentropy.ts';
export * from './dropout.ts';
export * from './elu.ts';
export * from './embedding.ts';
export * from './gelu.ts';
export * from './kl.ts';
export * from './matmul.ts';
export * from './meanpool.ts';
export * from './residual.ts';
export * from './rmsnorm.ts';
export * from './rope.ts';
export * from './softmax.ts';
export * from './swiglu.ts';
