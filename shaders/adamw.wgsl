// adamw: PyTorch torch.optim.AdamW with global-norm gradient clipping (clip_grad_norm_) and a
// non-finite check, all without a CPU readback between backward and update.
// grad_norm_squared  bindings: 0 params {N, slot}, 1 norms (slots), 2 grad (N)
//                    norms[slot] = Σ grad² (written). One workgroup strides the tensor and reduces in
//                    a fixed order: deterministic, and fast enough for LoRA-sized tensors.
// adamw_step         bindings: 0 params {N, numNorms, lr, beta1, beta2, eps, weightDecay, bc1, bc2,
//                    maxNorm}, 1 param (N), 2 grad (N), 3 m (N), 4 v (N), 5 norms (numNorms)
//                    clip = maxNorm > 0 ? min(1, maxNorm / (sqrt(Σ norms) + 1e-6)) : 1; g = grad · clip
//                    p −= lr·wd·p; m = b1·m + (1−b1)·g; v = b2·v + (1−b2)·g²
//                    p −= lr · (m / bc1) / (sqrt(v / bc2) + eps)      bc1 = 1 − b1^t, bc2 = 1 − b2^t
// finite_check       bindings: 0 params {N}, 1 flag (1) u32, 2 x (N)
//                    flag[0] = 1 if any x is NaN or ±Inf (exponent bits all ones: x != x may be
//                    folded away by a compiler); never cleared here.
// The elementwise kernels use a grid-stride loop, so any N fits the workgroup-count limit.

override WG: u32 = 256;

struct NormParams { N: u32, slot: u32 }
struct StepParams {
  N: u32, numNorms: u32, lr: f32, beta1: f32, beta2: f32,
  eps: f32, weightDecay: f32, bc1: f32, bc2: f32, maxNorm: f32,
}
struct CheckParams { N: u32 }

var<workgroup> red: array<f32, WG>;

@group(0) @binding(0) var<uniform> pn: NormParams;
@group(0) @binding(1) var<storage, read_write> n_norms: array<f32>;
@group(0) @binding(2) var<storage, read> n_grad: array<f32>;

@compute @workgroup_size(WG)
fn grad_norm_squared(@builtin(local_invocation_id) lid: vec3u) {
  var ss = 0.0;
  for (var i = lid.x; i < pn.N; i += WG) { let g = n_grad[i]; ss += g * g; }
  red[lid.x] = ss;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid.x < k) { red[lid.x] += red[lid.x + k]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { n_norms[pn.slot] = red[0]; }
}

@group(0) @binding(0) var<uniform> ps: StepParams;
@group(0) @binding(1) var<storage, read_write> s_param: array<f32>;
@group(0) @binding(2) var<storage, read> s_grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_m: array<f32>;
@group(0) @binding(4) var<storage, read_write> s_v: array<f32>;
@group(0) @binding(5) var<storage, read> s_norms: array<f32>;

// Every thread sums the few slots itself (uniform loads, same order everywhere): no barrier.
fn clip_scale() -> f32 {
  if (ps.maxNorm <= 0.0) { return 1.0; }
  var total = 0.0;
  for (var k = 0u; k < ps.numNorms; k++) { total += s_norms[k]; }
  return min(1.0, ps.maxNorm / (sqrt(total) + 1e-6));
}

@compute @workgroup_size(WG)
fn adamw_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let clip = clip_scale();
  for (var i = gid.x; i < ps.N; i += nwg.x * WG) {
    let g = s_grad[i] * clip;
    let p = s_param[i] * (1.0 - ps.lr * ps.weightDecay);
    let m = ps.beta1 * s_m[i] + (1.0 - ps.beta1) * g;
    let v = ps.beta2 * s_v[i] + (1.0 - ps.beta2) * g * g;
    s_m[i] = m;
    s_v[i] = v;
    s_param[i] = p - ps.lr * (m / ps.bc1) / (sqrt(v / ps.bc2) + ps.eps);
  }
}

@group(0) @binding(0) var<uniform> pf: CheckParams;
@group(0) @binding(1) var<storage, read_write> f_flag: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read> f_x: array<f32>;

@compute @workgroup_size(WG)
fn finite_check(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  var bad = false;
  for (var i = gid.x; i < pf.N; i += nwg.x * WG) {
    bad = bad || (bitcast<u32>(f_x[i]) & 0x7f800000u) == 0x7f800000u;
  }
  if (bad) { atomicStore(&f_flag[0], 1u); }
}
