//! A Q4_1 matmul with the same results as candle's, only faster.
//!
//! candle 0.11's CPU kernel for Q4_1 weights is its scalar fallback
//! (`BlockQ4_1::vec_dot_unopt`, a function call per block to convert f16),
//! which was over 80% of our forward pass. This kernel computes the very same
//! numbers: the activations are quantized to Q8_1 by candle's own
//! `BlockQ8_1::from_float`; each block's integer dot product (exact in any
//! order) is done with AVX2; and the floating-point accumulation over blocks
//! uses the same operations in the same order as candle's
//! (`sumf += sumi·d_w·d_a + m_w·s_a`, no FMA), so outputs are bit-identical
//! and greedy decoding is unchanged.
//!
//! Layout: the weights are regrouped at load into tiles of eight output rows
//! ([`Tile`]): for each block of 32 inputs, four 32-byte vectors each hold
//! four packed bytes of every row, so one `maddubs` against a broadcast
//! activation word yields partial sums for eight rows at once — no
//! horizontal sums, the eight rows' float accumulations side by side in one
//! register. Per block, eight `maddubs` results are added in 16 bits (at most
//! 8 × 2 × 15 × 127 = 30 480, no overflow) and widened once. Several
//! activation rows (prefill) share each unpacked weight vector. The scales
//! stay f16 in memory and are widened in the kernel (`vcvtph2ps`, exact), so
//! the bytes per weight are those of the GGUF (0.625): decode streams the
//! weights from memory once per token, and f32 scales made it read 20% more.
//! Work is split over tiles on candle's own thread pool.

#[cfg(test)]
use candle_core::quantized::k_quants::{BlockQ8_1, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, Device, Storage, Tensor};

const QK: usize = 32;
/// Output rows per tile.
const TR: usize = 8;

/// One block (32 inputs) of eight output rows.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Tile {
    /// `qs[g][4 r + i]` = byte `4 g + i` of row `r`'s Q4_1 block: low nibble
    /// input `4 g + i`, high nibble input `16 + 4 g + i`.
    qs: [[u8; 32]; 4],
    /// Scales of the eight rows, f16 bits (widened in the kernel, exactly).
    d: [u16; TR],
    /// Minimums of the eight rows, f16 bits.
    m: [u16; TR],
}

/// One activation block (Q8_1), scales widened (exact).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct ABlock {
    qs: [i8; 32],
    d: f32,
    s: f32,
}

/// Exact f16 → f32.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// A Q4_1 weight matrix (n rows of k) in tiles of eight rows.
pub struct Q41 {
    n: usize,
    k: usize,
    /// `tiles[t * kb + b]`: tile `t`, block `b`; rows past `n` are zero.
    tiles: Vec<Tile>,
}

impl Q41 {
    /// Takes a Q4_1 tensor of shape (n, k) when the CPU has AVX2 and FMA; `None` otherwise.
    pub fn new(t: &QTensor) -> Option<Q41> {
        if t.dtype() != GgmlDType::Q4_1 || !avx2() {
            return None;
        }
        let (n, k) = t.shape().dims2().ok()?;
        if k % QK != 0 {
            return None;
        }
        let data = t.data().ok()?;
        let kb = k / QK;
        if data.len() != n * kb * 20 {
            return None;
        }
        let n_tiles = n.div_ceil(TR);
        let mut tiles = vec![Tile { qs: [[0; 32]; 4], d: [0; TR], m: [0; TR] }; n_tiles * kb];
        for row in 0..n {
            let (t, r) = (row / TR, row % TR);
            for b in 0..kb {
                let src = &data[(row * kb + b) * 20..(row * kb + b + 1) * 20];
                let tile = &mut tiles[t * kb + b];
                tile.d[r] = u16::from_le_bytes([src[0], src[1]]);
                tile.m[r] = u16::from_le_bytes([src[2], src[3]]);
                for g in 0..4 {
                    tile.qs[g][4 * r..4 * r + 4].copy_from_slice(&src[4 + 4 * g..8 + 4 * g]);
                }
            }
        }
        Some(Q41 { n, k, tiles })
    }

    /// Output rows (columns of `x @ W^T`).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// `x @ W^T` for x of shape (…, k), f32.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let rows = QRows::new(x)?;
        let mut dims = x.dims().to_vec();
        dims.pop();
        dims.push(self.n);
        let out = matmul_many(&[self], &rows)?.pop().unwrap_or_default();
        Tensor::from_vec(out, dims, &Device::Cpu)
    }

    /// One quantized row: `out = W · a` (same bits as [`Q41::forward`]).
    /// `out.len()` must be at least [`Q41::rows`]. The decode step uses
    /// [`matmul_into`] over its batch; this is the tests' reference.
    #[cfg(test)]
    pub fn matvec(&self, a: &Acts, out: &mut [f32]) {
        matvec_many(&mut [(self, a, out)]);
    }

    /// Tile `t` of `W · a` into `out` (up to eight values).
    #[cfg(test)]
    fn tile_into(&self, a: &[ABlock], t: usize, out: &mut [f32]) {
        let kb = self.k / QK;
        let mut v = [0f32; 4 * TR];
        // SAFETY: Q41 exists only on CPUs with AVX2 and FMA.
        unsafe { tile_dot::<1>(&self.tiles[t * kb..(t + 1) * kb], [a], &mut v) };
        let cols = out.len();
        out.copy_from_slice(&v[..cols]);
    }
}

/// Activations of one row quantized to Q8_1 (candle's own rounding), reusable
/// across matrix-vector products: the decode path quantizes each normalised
/// hidden state once and multiplies it by several weight matrices.
pub struct Acts {
    #[cfg(test)]
    q8: Vec<BlockQ8_1>,
    blocks: Vec<ABlock>,
}

impl Acts {
    /// Room for a row of `k` values (a multiple of 32).
    pub fn new(k: usize) -> Acts {
        let kb = k / QK;
        Acts {
            #[cfg(test)]
            q8: (0..kb).map(|_| BlockQ8_1::zeros()).collect(),
            blocks: vec![ABlock { qs: [0; 32], d: 0.0, s: 0.0 }; kb] }
    }

    /// Quantizes `x` (length a multiple of 32, at most the capacity); no
    /// allocation. Same bits as candle's `BlockQ8_1::from_float`, in AVX2.
    pub fn quantize(&mut self, x: &[f32]) {
        for (dst, xs) in self.blocks.iter_mut().zip(x.chunks_exact(QK)) {
            // SAFETY: Acts are only used with Q41, which exists only with AVX2, FMA and F16C.
            unsafe { quantize_block(xs, dst) };
        }
    }

    /// candle's own quantizer, for the equality test.
    #[cfg(test)]
    fn quantize_candle(&mut self, x: &[f32]) {
        let kb = x.len() / QK;
        let q8 = &mut self.q8[..kb];
        BlockQ8_1::from_float(x, q8);
        // SAFETY: BlockQ8_1 is repr(C) {d: f16, s: f16, qs: [i8; 32]}, 36 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(q8.as_ptr() as *const u8, kb * 36) };
        for (dst, b) in self.blocks.iter_mut().zip(bytes.chunks_exact(36)) {
            for (q, &v) in dst.qs.iter_mut().zip(&b[4..36]) {
                *q = v as i8;
            }
            dst.d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            dst.s = f16_to_f32(u16::from_le_bytes([b[2], b[3]]));
        }
    }
}

/// candle's `quantize_row_q8_1` for one block, vectorised with the same
/// results: `amax`, `d = amax / 127`, `id = 1 / d`, `q = round(x · id)`
/// (half away from zero: truncate `v + copysign(0.5⁻, v)`, exact for
/// |v| < 2²³), `d` to f16 (F16C, round to nearest even, as the `half`
/// crate), `s = f16(f16(Σq) · d)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn quantize_block(xs: &[f32], out: &mut ABlock) {
    use std::arch::x86_64::*;
    let p = xs.as_ptr();
    let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i)));
    let absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut m = _mm256_and_ps(v[0], absmask);
    for x in &v[1..] {
        m = _mm256_max_ps(m, _mm256_and_ps(*x, absmask));
    }
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    let m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 0b01));
    let amax = _mm_cvtss_f32(m4);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let idv = _mm256_set1_ps(id);
    let half = _mm256_set1_ps(0.499_999_97);
    let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
    let mut qi = [_mm256_setzero_si256(); 4];
    for (q, x) in qi.iter_mut().zip(&v) {
        let y = _mm256_mul_ps(*x, idv);
        let t = _mm256_add_ps(y, _mm256_or_ps(half, _mm256_and_ps(y, sign)));
        *q = _mm256_cvttps_epi32(t);
    }
    // i32 → i8 in order: packs work per 128-bit lane, then fix the lane order.
    let a = _mm256_packs_epi32(qi[0], qi[1]);
    let b = _mm256_packs_epi32(qi[2], qi[3]);
    let c = _mm256_packs_epi16(a, b);
    let c = _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(out.qs.as_mut_ptr() as *mut __m256i, c);
    let s16 = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
    let s4 = _mm_add_epi32(_mm256_castsi256_si128(s16), _mm256_extracti128_si256(s16, 1));
    let s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b01));
    let sum = _mm_cvtsi128_si32(s4);
    let to_f16 = |x: f32| _mm_cvtps_ph(_mm_set_ss(x), _MM_FROUND_TO_NEAREST_INT);
    let from_f16 = |h: __m128i| _mm_cvtss_f32(_mm_cvtph_ps(h));
    let d16 = from_f16(to_f16(d));
    out.d = d16;
    out.s = from_f16(to_f16(from_f16(to_f16(sum as f32)) * d16));
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn quantize_block(_xs: &[f32], _out: &mut ABlock) {
    unreachable!("Q41::new returns None without AVX2")
}

/// Rows of activations quantized to Q8_1 once (in parallel), shared by every
/// matrix that takes them as input (query, key and value; gate and up).
pub struct QRows {
    m: usize,
    k: usize,
    blocks: Vec<ABlock>,
}

impl QRows {
    /// Quantizes `x` of shape (…, k), f32 on the CPU, row by row with
    /// candle's own Q8_1 rounding.
    pub fn new(x: &Tensor) -> candle_core::Result<QRows> {
        let x = x.contiguous()?;
        let k = *x.dims().last().unwrap_or(&0);
        if k % QK != 0 || k == 0 {
            candle_core::bail!("q4_1 matmul: input width {k} is not a multiple of {QK}");
        }
        let m = x.elem_count() / k;
        let kb = k / QK;
        let mut blocks = vec![ABlock { qs: [0; 32], d: 0.0, s: 0.0 }; m * kb];
        let (st, layout) = x.storage_and_layout();
        let xs = match &*st {
            Storage::Cpu(CpuStorage::F32(v)) => &v[layout.start_offset()..layout.start_offset() + m * k],
            _ => candle_core::bail!("q4_1 matmul: expected f32 on CPU"),
        };
        let ptr = blocks.as_mut_ptr() as usize;
        candle_core::utils::barrier_pool().execute_chunked(m, |rows| {
            let mut acts = Acts::new(k);
            for r in rows {
                acts.quantize(&xs[r * k..(r + 1) * k]);
                // SAFETY: row r's blocks are written by this work item only.
                let dst = unsafe { std::slice::from_raw_parts_mut((ptr as *mut ABlock).add(r * kb), kb) };
                dst.copy_from_slice(&acts.blocks[..kb]);
            }
        });
        Ok(QRows { m, k, blocks })
    }

    /// Room for up to `m` rows of `k` values (a multiple of 32), for the
    /// batched decode step, which quantizes into it with [`QRows::quantize`]
    /// and so allocates nothing per step.
    pub fn with_capacity(m: usize, k: usize) -> QRows {
        QRows { m: 0, k, blocks: vec![ABlock { qs: [0; 32], d: 0.0, s: 0.0 }; m * (k / QK)] }
    }

    /// Quantizes the first `m` rows of `x` (row-major, `k` wide), growing
    /// the buffer if needed; same bits as [`QRows::new`] and [`Acts::quantize`].
    /// Sequential: a decode batch is at most a few dozen rows.
    pub fn quantize(&mut self, x: &[f32], m: usize) {
        let kb = self.k / QK;
        if self.blocks.len() < m * kb {
            self.blocks.resize(m * kb, ABlock { qs: [0; 32], d: 0.0, s: 0.0 });
        }
        for (dst, xs) in self.blocks[..m * kb].iter_mut().zip(x[..m * self.k].chunks_exact(QK)) {
            // SAFETY: QRows are only used with Q41, which exists only with AVX2, FMA and F16C.
            unsafe { quantize_block(xs, dst) };
        }
        self.m = m;
    }
}

/// `rows @ W^T` for several matrices with the same input, in one dispatch:
/// work items are (matrix, tile, group of 32 rows); returns one row-major
/// `m × n` vector per matrix.
pub fn matmul_many(ws: &[&Q41], rows: &QRows) -> candle_core::Result<Vec<Vec<f32>>> {
    for w in ws {
        if w.k != rows.k {
            candle_core::bail!("q4_1 matmul: input width {} does not match k = {}", rows.k, w.k);
        }
    }
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; rows.m * w.n]).collect();
    let mut jobs: Vec<(&Q41, &QRows, &mut [f32])> =
        ws.iter().zip(outs.iter_mut()).map(|(w, o)| (*w, rows, o.as_mut_slice())).collect();
    matmul_into(&mut jobs);
    Ok(outs)
}

/// `rows @ W^T` for several (matrix, input rows, output) triples in one
/// dispatch, into preallocated outputs (row-major, at least `m × n` each).
/// Work items are (product, tile, group of 32 rows); each item streams its
/// tile of weights once for its rows, four rows per pass of
/// [`tile_dot`]. Every output value is computed exactly as by
/// [`Q41::matvec`] for that row alone: rows never mix, and the float
/// operations per (row, output) are the same whatever the number of rows —
/// which is what makes a batched decode step bit-identical to single ones.
pub fn matmul_into(jobs: &mut [(&Q41, &QRows, &mut [f32])]) {
    const ROWS: usize = 32;
    let mut bounds = vec![0usize];
    for (w, rows, out) in jobs.iter() {
        assert_eq!(w.k, rows.k, "q4_1 matmul: input width does not match the matrix");
        assert!(out.len() >= rows.m * w.n, "q4_1 matmul: output shorter than m × n");
        bounds.push(bounds[bounds.len() - 1] + w.n.div_ceil(TR) * rows.m.div_ceil(ROWS));
    }
    let descs: Vec<(&Q41, &QRows, usize)> = jobs.iter_mut().map(|(w, r, o)| (*w, *r, o.as_mut_ptr() as usize)).collect();
    let total = bounds[descs.len()];
    candle_core::utils::barrier_pool().execute_chunked(total, |items| {
        for item in items {
            let j = bounds[1..].iter().position(|&b| item < b).unwrap_or(0);
            let (w, rows, ptr) = descs[j];
            let local = item - bounds[j];
            let (n, m, kb) = (w.n, rows.m, w.k / QK);
            let n_tiles = n.div_ceil(TR);
            let (t, rg) = (local % n_tiles, local / n_tiles);
            let tiles = &w.tiles[t * kb..(t + 1) * kb];
            let (r0, r1) = (rg * ROWS, (rg * ROWS + ROWS).min(m));
            let arow = |r: usize| &rows.blocks[r * kb..(r + 1) * kb];
            let cols = TR.min(n - t * TR);
            let mut out = [0f32; 4 * TR];
            let mut r = r0;
            while r < r1 {
                let count = (r1 - r).min(4);
                // SAFETY: Q41 exists only on CPUs with AVX2 and FMA.
                unsafe {
                    match count {
                        4 => tile_dot::<4>(tiles, [arow(r), arow(r + 1), arow(r + 2), arow(r + 3)], &mut out),
                        3 => tile_dot::<3>(tiles, [arow(r), arow(r + 1), arow(r + 2)], &mut out),
                        2 => tile_dot::<2>(tiles, [arow(r), arow(r + 1)], &mut out),
                        _ => tile_dot::<1>(tiles, [arow(r)], &mut out),
                    }
                }
                for i in 0..count {
                    // SAFETY: (product, row, tile) triples are disjoint across work items.
                    let d = unsafe { std::slice::from_raw_parts_mut((ptr as *mut f32).add((r + i) * n + t * TR), cols) };
                    d.copy_from_slice(&out[i * TR..i * TR + cols]);
                }
                r += count;
            }
        }
    });
}

/// Several matrix-vector products in one dispatch on candle's thread pool
/// (e.g. the query, key and value projections of one input): one barrier
/// instead of one per matrix. Each output slice must have the matrix's rows.
#[cfg(test)]
pub fn matvec_many(jobs: &mut [(&Q41, &Acts, &mut [f32])]) {
    let mut bounds = [0usize; 8];
    assert!(jobs.len() < bounds.len(), "matvec_many: at most 7 products at once");
    for (i, (w, _, out)) in jobs.iter().enumerate() {
        assert!(out.len() >= w.n, "matvec_many: output shorter than the matrix");
        bounds[i + 1] = bounds[i] + w.n.div_ceil(TR);
    }
    let total = bounds[jobs.len()];
    let mut ptrs = [(0usize, None::<&Q41>, None::<&[ABlock]>); 7];
    for (p, (w, a, out)) in ptrs.iter_mut().zip(jobs.iter_mut()) {
        *p = (out.as_mut_ptr() as usize, Some(*w), Some(&a.blocks[..w.k / QK]));
    }
    let n_jobs = jobs.len();
    candle_core::utils::barrier_pool().execute_chunked(total, |range| {
        for g in range {
            let j = bounds[1..=n_jobs].iter().position(|&b| g < b).unwrap_or(0);
            let (ptr, Some(w), Some(a)) = ptrs[j] else { continue };
            let t = g - bounds[j];
            let cols = TR.min(w.n - t * TR);
            // SAFETY: each tile of output rows is written by one work item only.
            let out = unsafe { std::slice::from_raw_parts_mut((ptr as *mut f32).add(t * TR), cols) };
            w.tile_into(a, t, out);
        }
    });
}

pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `R` activation rows against one tile (eight weight rows), over all blocks:
/// `out[r * 8 + c]` = row `r` · weight row `c`, in candle's float order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn tile_dot<const R: usize>(tiles: &[Tile], a: [&[ABlock]; R], out: &mut [f32; 4 * TR]) {
    use std::arch::x86_64::*;
    let mask = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    let mut sumf = [_mm256_setzero_ps(); R];
    for (b, tile) in tiles.iter().enumerate() {
        let mut acc = [_mm256_setzero_si256(); R];
        for g in 0..4 {
            let w = _mm256_load_si256(tile.qs[g].as_ptr() as *const __m256i);
            let lo = _mm256_and_si256(w, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), mask);
            for r in 0..R {
                let q = a[r].get_unchecked(b).qs.as_ptr();
                let alo = _mm256_set1_epi32((q.add(4 * g) as *const i32).read_unaligned());
                let ahi = _mm256_set1_epi32((q.add(16 + 4 * g) as *const i32).read_unaligned());
                acc[r] = _mm256_add_epi16(acc[r], _mm256_maddubs_epi16(lo, alo));
                acc[r] = _mm256_add_epi16(acc[r], _mm256_maddubs_epi16(hi, ahi));
            }
        }
        let wd = _mm256_cvtph_ps(_mm_loadu_si128(tile.d.as_ptr() as *const __m128i));
        let wm = _mm256_cvtph_ps(_mm_loadu_si128(tile.m.as_ptr() as *const __m128i));
        for r in 0..R {
            let y = a[r].get_unchecked(b);
            let sumi = _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[r], ones));
            // candle: sumf += sumi * d_w * d_a + m_w * s_a (unfused, in this order).
            let t = _mm256_mul_ps(_mm256_mul_ps(sumi, wd), _mm256_set1_ps(y.d));
            let u = _mm256_mul_ps(wm, _mm256_set1_ps(y.s));
            sumf[r] = _mm256_add_ps(sumf[r], _mm256_add_ps(t, u));
        }
    }
    for r in 0..R {
        _mm256_storeu_ps(out.as_mut_ptr().add(r * TR), sumf[r]);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_dot<const R: usize>(_tiles: &[Tile], _a: [&[ABlock]; R], _out: &mut [f32; 4 * TR]) {
    unreachable!("Q41::new returns None without AVX2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_is_exact() {
        for h in 0u16..=0xffff {
            let a = f16_to_f32(h);
            let b = half_ref(h);
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{h:#x}: {a} vs {b}");
        }
    }

    /// Reference: widen through candle's own f16 → f32 (via a Q8_1 dequantize would be
    /// indirect); compute from the definition instead.
    fn half_ref(h: u16) -> f32 {
        let s = if h >> 15 == 1 { -1.0f64 } else { 1.0 };
        let e = ((h >> 10) & 0x1f) as i32;
        let m = (h & 0x3ff) as f64;
        let v = match e {
            0 => s * m * 2f64.powi(-24),
            0x1f => {
                if m == 0.0 {
                    s * f64::INFINITY
                } else {
                    f64::NAN
                }
            }
            _ => s * (1.0 + m / 1024.0) * 2f64.powi(e - 15),
        };
        v as f32
    }

    #[test]
    fn matches_candle_bit_for_bit() {
        for (n, k, m) in [(22, 96, 1), (22, 96, 9), (20, 64, 5)] {
            check(n, k, m);
        }
    }

    fn check(n: usize, k: usize, m: usize) {
        let dev = Device::Cpu;
        let wf: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.3).collect();
        let xf: Vec<f32> = (0..m * k).map(|i| ((i * 104729 % 977) as f32 / 488.0 - 1.0) * 2.0).collect();
        let wt = Tensor::from_vec(wf, (n, k), &dev).unwrap();
        let q = QTensor::quantize(&wt, GgmlDType::Q4_1).unwrap();
        let x = Tensor::from_vec(xf, (1, m, k), &dev).unwrap();
        let Some(fast) = Q41::new(&q) else { return };
        let ours: Vec<f32> = fast.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let qm = candle_core::quantized::QMatMul::from_qtensor(q).unwrap();
        let theirs: Vec<f32> =
            candle_core::Module::forward(&qm, &x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
        }
    }

    #[test]
    fn decode_matvec_is_bit_identical_to_the_exact_kernel() {
        let dev = Device::Cpu;
        let (n, k) = (45, 576);
        let wf: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.3).collect();
        let xf: Vec<f32> = (0..k).map(|i| ((i * 104729 % 977) as f32 / 488.0 - 1.0) * 2.0).collect();
        let q = QTensor::quantize(&Tensor::from_vec(wf, (n, k), &dev).unwrap(), GgmlDType::Q4_1).unwrap();
        let Some(fast) = Q41::new(&q) else { return };
        let exact: Vec<f32> =
            fast.forward(&Tensor::from_slice(&xf, (1, k), &dev).unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut acts = Acts::new(k);
        acts.quantize(&xf);
        let mut out = vec![0f32; n];
        fast.matvec(&acts, &mut out);
        for (a, b) in out.iter().zip(&exact) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
        }
    }

    /// A row's products do not depend on the other rows of a batch: the
    /// batched decode step (`matmul_into` over B rows, preallocated) gives
    /// every row the bits of `matvec` on that row alone, for batch sizes
    /// around the four-row passes and the 32-row groups.
    #[test]
    fn batched_rows_are_bit_identical_to_single_rows() {
        let dev = Device::Cpu;
        let (n, k) = (45, 576);
        let wf: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.3).collect();
        let q = QTensor::quantize(&Tensor::from_vec(wf, (n, k), &dev).unwrap(), GgmlDType::Q4_1).unwrap();
        let Some(w) = Q41::new(&q) else { return };
        for m in [1, 2, 3, 4, 5, 7, 16, 33] {
            let xf: Vec<f32> = (0..m * k).map(|i| ((i * 104729 % 977) as f32 / 488.0 - 1.0) * 2.0).collect();
            let mut rows = QRows::with_capacity(1, k);
            rows.quantize(&xf, m);
            let mut out = vec![0f32; m * n];
            matmul_into(&mut [(&w, &rows, &mut out[..])]);
            for r in 0..m {
                let mut acts = Acts::new(k);
                acts.quantize(&xf[r * k..(r + 1) * k]);
                let mut one = vec![0f32; n];
                w.matvec(&acts, &mut one);
                for (a, b) in out[r * n..(r + 1) * n].iter().zip(&one) {
                    assert_eq!(a.to_bits(), b.to_bits(), "m {m}, row {r}: {a} vs {b}");
                }
            }
        }
    }

    /// The AVX2 quantizer gives candle's bits, including the rounding of
    /// halves (away from zero), values next to them, zeros and f16 scales.
    #[test]
    fn quantizer_matches_candle_bit_for_bit() {
        if !avx2() {
            return;
        }
        let mut rows: Vec<Vec<f32>> = Vec::new();
        let mut seed = 0x9e37_79b9u32;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for scale in [1e-3f32, 0.1, 1.0, 7.3, 250.0] {
            for _ in 0..400 {
                rows.push((0..64).map(|_| (rnd() as f32 / u32::MAX as f32 - 0.5) * 2.0 * scale).collect());
            }
        }
        // Halves and their neighbours: with amax = 127 the scale is 1, so x·id = x.
        let mut ties = Vec::new();
        for i in -127..127 {
            let h = i as f32 + 0.5;
            ties.extend([h, f32::from_bits(h.to_bits() + 1), f32::from_bits(h.to_bits() - 1)]);
        }
        for chunk in ties.chunks(31) {
            let mut row = vec![127.0f32];
            row.extend_from_slice(chunk);
            row.resize(32, 0.0);
            rows.push(row);
        }
        rows.push(vec![0.0; 32]);
        for row in rows {
            let mut a = Acts::new(row.len());
            let mut b = Acts::new(row.len());
            a.quantize(&row);
            b.quantize_candle(&row);
            for (x, y) in a.blocks.iter().zip(&b.blocks) {
                assert_eq!(x.qs, y.qs, "{row:?}");
                assert_eq!(x.d.to_bits(), y.d.to_bits());
                assert_eq!(x.s.to_bits(), y.s.to_bits(), "{row:?}");
            }
        }
    }
}
