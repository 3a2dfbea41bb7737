//! Causal grouped-query attention of a prefill (several new tokens at once
//! against the KV cache), for head_dim 64, in exactly the arithmetic of the
//! candle ops it replaces — and so of the reference model — but without their
//! waste.
//!
//! The candle path (`q @ kᵀ` through `gemm`, `* 1/8`, `+ mask`,
//! `softmax_last_dim`, `@ v` through `gemm`) materialises every query row's
//! scores against every cached position, computes the masked half of them,
//! takes `exp(-inf)` of it and multiplies it by the values: at 1,024 tokens a
//! layer writes and reads 9 × 1024² floats (38 MB), half of which are masked,
//! and prefill falls from ~500 to ~200 tokens/s between 512 and 1,024 tokens.
//! Here each task takes 16 query rows of one head, computes their scores only
//! up to the last position they may see, takes the softmax of each row and
//! multiplies by the values, in a scratch that stays in cache.
//!
//! Why the same bits matter: activations are re-quantized to Q8_1 at every
//! matrix, so a last-bit difference in one attention output becomes a
//! different rounding and, over 30 layers, a logit difference of 0.45–0.83
//! (measured on a 660-token prompt when only the order of a sum changes). The
//! reference test (`optimised_path_agrees_with_the_reference_on_long_prompts`)
//! allows 0.05, and the prefill is bit-identical to the reference today. So
//! every float goes through the same operations in the same order as in the
//! candle ops (AVX2 + FMA, `gemm`'s V3 kernels):
//! - a score is `gemm`'s microkernel sum: one accumulator, `fma` over the 64
//!   dimensions in order (the depth, 64, is one block), then `* 1/8`;
//! - softmax: the max, libm `exp(s - max)`, the sum as candle's AVX
//!   `vec_sum` over the *whole* row of `kv_len` (four 8-lane accumulators over
//!   steps of 32, a tree, two `hadd`s, then the tail in order — the masked
//!   positions are zeros, which leave every partial sum as it is, so only
//!   where the row ends relative to `kv_len & !31` matters), then a division;
//! - values: `gemm` splits the depth (`kv_len`) into blocks of `kc` (from
//!   `gemm_common::cache::kernel_params`, the same call `gemm` makes); within
//!   a block one accumulator, `fma` in position order from zero; the first
//!   block is stored, each next one added (`dst = fma(1, acc, dst)`). A masked
//!   position has probability 0 and its `fma` leaves the accumulator as it is,
//!   so stopping at the last visible position gives the same bits.
//!
//! The bit-identity test below compares against the candle ops at chunk and
//! cache lengths on both sides of every switch (32-lane tail, `kc` blocks).

/// Query rows per task.
const TILE: usize = 16;
/// `gemm`'s f32 microkernel on AVX2+FMA: 2 × 8 rows by 6 columns.
const GEMM_MR: usize = 16;
const GEMM_NR: usize = 6;

/// Whether [`attention`] can run here: x86-64 with AVX2 and FMA (`gemm`'s V3
/// kernels, whose arithmetic it reproduces) and head_dim 64.
pub fn available(head_dim: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        head_dim == 64 && std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = head_dim;
        false
    }
}

/// Smallest chunk this kernel takes: below it `gemm` uses other paths (the
/// small-matrix kernels, `kc = min(k, 512)`), and the candle ops are cheap.
pub const MIN_SEQ: usize = 32;

/// The depth block `gemm` uses for `p @ v` of one KV head: `rows` query rows
/// (groups × seq), 64 columns, depth `kv_len`.
fn value_depth_block(rows: usize, kv_len: usize) -> usize {
    if rows <= 64 {
        kv_len.min(512)
    } else {
        gemm_common::cache::kernel_params(rows, 64, kv_len, GEMM_MR, GEMM_NR, std::mem::size_of::<f32>()).kc
    }
}

/// Causal attention of `seq` new positions starting at `index_pos`.
///
/// - `q`: `[n_head][seq][64]` (after RoPE);
/// - `k_cache`, `v_cache`: `[n_kv_head][ctx][64]`, the new keys and values
///   already written at `index_pos..index_pos + seq`;
/// - `y`: `[seq][n_head][64]`, the attention output ready for `wo`.
///
/// Query head `h` reads KV head `h / (n_head / n_kv_head)`; row `r` sees
/// positions `0..=index_pos + r`. Work is split over candle's thread pool.
///
/// # Panics
/// If [`available`] is false or a slice is shorter than the shapes say (the
/// model checks both before calling).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    ctx: usize,
    index_pos: usize,
    seq: usize,
    n_head: usize,
    n_kv_head: usize,
    y: &mut [f32],
) {
    const HD: usize = 64;
    let kv_len = index_pos + seq;
    assert!(available(HD) && seq > 0 && kv_len <= ctx && n_head.is_multiple_of(n_kv_head));
    assert!(q.len() >= n_head * seq * HD && y.len() >= seq * n_head * HD);
    assert!(k_cache.len() >= n_kv_head * ctx * HD && v_cache.len() >= n_kv_head * ctx * HD);
    let groups = n_head / n_kv_head;
    let kc = value_depth_block(groups * seq, kv_len);
    // Keys transposed per KV head, [d][j] with a padded row stride, so that
    // eight positions' scores are one vector accumulator.
    let stride = kv_len.next_multiple_of(16);
    let mut kt = vec![0f32; n_kv_head * HD * stride];
    for h in 0..n_kv_head {
        let kh = &k_cache[h * ctx * HD..(h * ctx + kv_len) * HD];
        let th = &mut kt[h * HD * stride..(h + 1) * HD * stride];
        for (j, key) in kh.chunks_exact(HD).enumerate() {
            for (d, &x) in key.iter().enumerate() {
                th[d * stride + j] = x;
            }
        }
    }
    let tiles = seq.div_ceil(TILE);
    let heads = n_head;
    let y_ptr = y.as_mut_ptr() as usize;
    let kt = &kt;
    candle_core::utils::barrier_pool().execute_chunked(tiles * heads, |items| {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            for item in items {
                // Longest rows first: the last tiles see the most positions.
                let tile = tiles - 1 - item / heads;
                let qh = item % heads;
                let kvh = qh / groups;
                let r0 = tile * TILE;
                let rows = TILE.min(seq - r0);
                let task = Task {
                    q: &q[(qh * seq + r0) * HD..(qh * seq + r0 + rows) * HD],
                    kt: &kt[kvh * HD * stride..(kvh + 1) * HD * stride],
                    stride,
                    v: &v_cache[kvh * ctx * HD..(kvh * ctx + kv_len) * HD],
                    first_end: index_pos + r0 + 1,
                    kv_len,
                    kc,
                };
                let width = (task.first_end + rows - 1).next_multiple_of(32);
                if s.len() < rows * width {
                    s.resize(rows * width, 0.0);
                }
                let mut out = [0f32; TILE * HD];
                // SAFETY: `available` was asserted above; the slices are sized as checked.
                unsafe { run_task(&task, rows, width, &mut s[..rows * width], &mut out[..rows * HD]) };
                for (r, o) in out[..rows * HD].chunks_exact(HD).enumerate() {
                    // SAFETY: (head, row) owns y[row][head][..64]; tasks never share one.
                    let dst = unsafe { std::slice::from_raw_parts_mut((y_ptr as *mut f32).add(((r0 + r) * n_head + qh) * HD), HD) };
                    dst.copy_from_slice(o);
                }
            }
        })
    });
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One task: up to [`TILE`] consecutive query rows of one head.
struct Task<'a> {
    /// The rows' queries, `[rows][64]`.
    q: &'a [f32],
    /// The KV head's keys, `[64][stride]`.
    kt: &'a [f32],
    stride: usize,
    /// The KV head's values, `[kv_len][64]`.
    v: &'a [f32],
    /// Positions the first row sees (`index_pos + r0 + 1`); row `r` sees one more each.
    first_end: usize,
    kv_len: usize,
    /// `gemm`'s depth block for `p @ v`.
    kc: usize,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_task(t: &Task<'_>, rows: usize, width: usize, p: &mut [f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    const HD: usize = 64;
    let end = t.first_end + rows - 1; // positions the last row sees
    let cols = end.next_multiple_of(16);
    // 1. Scores, four rows by sixteen positions at a time: fma over d in order.
    let mut r = 0;
    while r < rows {
        let rn = (rows - r).min(4);
        let mut j = 0;
        while j < cols {
            let mut acc = [[_mm256_setzero_ps(); 2]; 4];
            for d in 0..HD {
                let k0 = _mm256_loadu_ps(t.kt.as_ptr().add(d * t.stride + j));
                let k1 = _mm256_loadu_ps(t.kt.as_ptr().add(d * t.stride + j + 8));
                for (rr, a) in acc.iter_mut().enumerate().take(rn) {
                    let qv = _mm256_set1_ps(*t.q.get_unchecked((r + rr) * HD + d));
                    a[0] = _mm256_fmadd_ps(qv, k0, a[0]);
                    a[1] = _mm256_fmadd_ps(qv, k1, a[1]);
                }
            }
            for (rr, a) in acc.iter().enumerate().take(rn) {
                let row = p.as_mut_ptr().add((r + rr) * width + j);
                if j + 16 <= width {
                    _mm256_storeu_ps(row, a[0]);
                    _mm256_storeu_ps(row.add(8), a[1]);
                } else {
                    let mut tmp = [0f32; 16];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), a[0]);
                    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), a[1]);
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), row, width - j);
                }
            }
            j += 16;
        }
        r += rn;
    }
    // 2. Softmax of each row over its visible positions, candle's order.
    let zero = _mm256_setzero_ps();
    for r in 0..rows {
        let e = t.first_end + r;
        let row = &mut p[r * width..(r + 1) * width];
        let mut max = f32::NEG_INFINITY;
        for s in row[..e].iter_mut() {
            *s *= 0.125;
            max = max.max(*s);
        }
        for s in row[..e].iter_mut() {
            *s = (*s - max).exp();
        }
        row[e..].fill(0.0);
        let sum = super::cpu::candle_sum(&row[..e], t.kv_len);
        for s in row[..e].iter_mut() {
            *s /= sum;
        }
    }
    // 3. Values: per depth block, one accumulator per output from zero, fma in
    //    position order; the first block stored, the next ones added.
    //    Three rows by half a head (4 vectors) at a time.
    let mut r = 0;
    while r < rows {
        let rn = (rows - r).min(3);
        for half in 0..2 {
            let mut dst = [[zero; 4]; 3];
            let mut b0 = 0;
            while b0 < end {
                let b1 = (b0 + t.kc).min(end);
                let mut acc = [[zero; 4]; 3];
                for j in b0..b1 {
                    let vp = t.v.as_ptr().add(j * HD + half * 32);
                    let vv = [_mm256_loadu_ps(vp), _mm256_loadu_ps(vp.add(8)), _mm256_loadu_ps(vp.add(16)), _mm256_loadu_ps(vp.add(24))];
                    for (rr, a) in acc.iter_mut().enumerate().take(rn) {
                        let pv = _mm256_set1_ps(*p.get_unchecked((r + rr) * width + j));
                        for c in 0..4 {
                            a[c] = _mm256_fmadd_ps(pv, vv[c], a[c]);
                        }
                    }
                }
                for rr in 0..rn {
                    for c in 0..4 {
                        dst[rr][c] = if b0 == 0 { acc[rr][c] } else { _mm256_add_ps(dst[rr][c], acc[rr][c]) };
                    }
                }
                b0 += t.kc;
            }
            for (rr, d) in dst.iter().enumerate().take(rn) {
                for (c, v) in d.iter().enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add((r + rr) * HD + half * 32 + c * 8), *v);
                }
            }
        }
        r += rn;
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn run_task(_t: &Task<'_>, _rows: usize, _width: usize, _p: &mut [f32], _out: &mut [f32]) {
    unreachable!("prefill attention needs AVX2 (see `available`)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// The candle ops the model ran before (and the reference runs): the
    /// query heads of one KV head folded into rows, `q @ kᵀ * 1/8 + mask`,
    /// `softmax_last_dim`, `@ v`; returned as `[seq][n_head][64]`.
    #[allow(clippy::too_many_arguments)]
    fn candle_ops(q: &[f32], k: &[f32], v: &[f32], ctx: usize, index_pos: usize, seq: usize, n_head: usize, n_kv: usize) -> Vec<f32> {
        let dev = Device::Cpu;
        let hd = 64;
        let kv_len = index_pos + seq;
        let groups = n_head / n_kv;
        let cut = |c: &[f32]| -> Tensor {
            let mut all = Vec::new();
            for h in 0..n_kv {
                all.extend_from_slice(&c[h * ctx * hd..(h * ctx + kv_len) * hd]);
            }
            Tensor::from_vec(all, (1, n_kv, kv_len, hd), &dev).unwrap()
        };
        let mask: Vec<f32> = (0..seq).flat_map(|i| (0..kv_len).map(move |j| if j > i + index_pos { f32::NEG_INFINITY } else { 0.0 })).collect();
        let mask = Tensor::from_slice(&mask, (seq, kv_len), &dev).unwrap();
        let qt = Tensor::from_slice(&q[..n_head * seq * hd], (1, n_kv, groups * seq, hd), &dev).unwrap();
        let att = (qt.matmul(&cut(k).t().unwrap()).unwrap() * 0.125).unwrap();
        let att = att.reshape((1, n_kv, groups, seq, kv_len)).unwrap().broadcast_add(&mask).unwrap();
        let att = att.reshape((1, n_kv, groups * seq, kv_len)).unwrap();
        let att = candle_nn::ops::softmax_last_dim(&att).unwrap();
        let y = att.matmul(&cut(v)).unwrap();
        y.reshape((1, n_head, seq, hd)).unwrap().transpose(1, 2).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Same bits as the candle ops for chunks and cache depths on both sides
    /// of every switch: the 32-lane tail of the softmax sum, a row ending
    /// inside or beyond `kv_len & !31`, one and several `gemm` depth blocks
    /// (`kv_len` over 512 and over 1,024), a tile of fewer than 16 rows.
    #[test]
    fn prefill_attention_is_bit_identical_to_candle_ops() {
        if !available(64) {
            return;
        }
        let (n_head, n_kv, hd) = (9, 3, 64);
        for &(index_pos, seq) in &[(0, 32), (0, 33), (0, 100), (5, 64), (31, 64), (200, 64), (448, 64), (500, 37), (0, 513), (0, 700), (460, 600), (1000, 64), (0, 1100)] {
            let ctx = index_pos + seq + 3;
            let q: Vec<f32> = (0..n_head * seq * hd).map(|i| ((i * 37 + seq) as f32 * 0.013).sin() * 2.0).collect();
            let k: Vec<f32> = (0..n_kv * ctx * hd).map(|i| (i as f32 * 0.0071).cos() * 1.5).collect();
            let v: Vec<f32> = (0..n_kv * ctx * hd).map(|i| (i as f32 * 0.0113).sin()).collect();
            let mut y = vec![0f32; seq * n_head * hd];
            attention(&q, &k, &v, ctx, index_pos, seq, n_head, n_kv, &mut y);
            let want = candle_ops(&q, &k, &v, ctx, index_pos, seq, n_head, n_kv);
            for (i, (got, want)) in y.iter().zip(&want).enumerate() {
                assert_eq!(got.to_bits(), want.to_bits(), "index_pos {index_pos}, seq {seq}, element {i}: {got} vs {want}");
            }
        }
    }
}
