/**
 * Our RoPE rotates adjacent pairs (2i, 2i+1) of each head, like llama2.c, Meta's checkpoints and
 * GGUF; transformers' LLaMA rotates (i, i + HS/2) and its checkpoints (and so MLC builds and PEFT
 * adapters) store the rows of q_proj / k_proj permuted to match. This is that permutation.
 */

/**
 * Row permutation between our RoPE layout and transformers' for a (NH·HS, cols) matrix:
 * toHf: out[h·HS + j·HS/2 + i] = in[h·HS + 2i + j]; otherwise the inverse.
 */
export function permuteRopeRows(m: Float32Array, nHeads: number, hs: number, toHf: boolean): Float32Array {
  const cols = m.length / (nHeads * hs);
  const out = new Float32Array(m.length);
  for (let h = 0; h < nHeads; h++)
    for (let i = 0; i < hs / 2; i++)
      for (let j = 0; j < 2; j++) {
        const ours = h * hs + 2 * i + j;
        const hf = h * hs + j * (hs / 2) + i;
        const [from, to] = toHf ? [ours, hf] : [hf, ours];
        out.set(m.subarray(from * cols, (from + 1) * cols), to * cols);
      }
  return out;
}
