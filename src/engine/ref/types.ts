/** CPU references run in float32 (to compare with the GPU) and float64 (finite differences). */
export type FloatArray = Float32Array | Float64Array;
