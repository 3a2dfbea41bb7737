//! A Q8_0 matrix-vector kernel (AVX2 + FMA) for the LM head.
//!
//! SmolLM2's GGUF ties the LM head to the token embeddings and stores them as
//! Q8_0 (49152 × 576: a third of the model's bytes), so the head is a large
//! share of every decoded token. candle's kernel handles one output row per
//! call; this one runs four rows together (more independent work per loop),
//! each row in candle's own AVX order (eight-lane FMA sum over blocks, the
//! same horizontal sum), split over candle's thread pool. Activations are
//! quantized to Q8_0 by candle's own `BlockQ8_0::from_float`, so the logits
//! have the same bits as candle's.

use candle_core::quantized::k_quants::{BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, Device, Storage, Tensor};

const QK: usize = 32;

/// One block of 32 signed bytes with its scale.
#[derive(Clone, Copy)]
#[repr(C)]
struct Block<D> {
    qs: [i8; 32],
    d: D,
}

/// A weight block: the scale stays f16 (34 bytes, as in the GGUF; decode
/// streams the head's weights once per token, and an f32 scale made it read
/// 6% more), widened in the kernel with `vcvtph2ps` (exact).
type WBlock = Block<u16>;
/// An activation block, scale widened to f32 (exact).
type ABlock = Block<f32>;

/// Activations of one row quantized to Q8_0, reusable across products.
pub struct Acts8 {
    q8: Vec<BlockQ8_0>,
    blocks: Vec<ABlock>,
}

impl Acts8 {
    /// Room for a row of `k` values (a multiple of 32).
    pub fn new(k: usize) -> Acts8 {
        let kb = k / QK;
        Acts8 { q8: (0..kb).map(|_| BlockQ8_0::zeros()).collect(), blocks: vec![ABlock { qs: [0; 32], d: 0.0 }; kb] }
    }

    /// Quantizes `x` (length a multiple of 32, at most the capacity).
    pub fn quantize(&mut self, x: &[f32]) {
        let kb = x.len() / QK;
        let q8 = &mut self.q8[..kb];
        BlockQ8_0::from_float(x, q8);
        // SAFETY: BlockQ8_0 is repr(C) {d: f16, qs: [i8; 32]}, 34 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(q8.as_ptr() as *const u8, kb * 34) };
        for (dst, b) in self.blocks.iter_mut().zip(bytes.chunks_exact(34)) {
            for (q, &v) in dst.qs.iter_mut().zip(&b[2..34]) {
                *q = v as i8;
            }
            dst.d = super::q4_1::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        }
    }
}

/// A Q8_0 weight matrix (n rows of k).
pub struct Q80 {
    n: usize,
    k: usize,
    w: Vec<WBlock>,
}

impl Q80 {
    /// Takes a Q8_0 tensor of shape (n, k) when the CPU has AVX2 and FMA.
    pub fn new(t: &QTensor) -> Option<Q80> {
        if t.dtype() != GgmlDType::Q8_0 || !super::q4_1::avx2() {
            return None;
        }
        let (n, k) = t.shape().dims2().ok()?;
        if k % QK != 0 {
            return None;
        }
        let data = t.data().ok()?;
        if data.len() != n * k / QK * 34 {
            return None;
        }
        let w = data
            .chunks_exact(34)
            .map(|b| {
                let mut qs = [0i8; 32];
                for (q, &v) in qs.iter_mut().zip(&b[2..34]) {
                    *q = v as i8;
                }
                WBlock { qs, d: u16::from_le_bytes([b[0], b[1]]) }
            })
            .collect();
        Some(Q80 { n, k, w })
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// `out = W · a`; `out.len()` must be [`Q80::rows`].
    pub fn matvec(&self, a: &Acts8, out: &mut [f32]) {
        let n = self.n.min(out.len());
        self.matmul_rows(&[a], &mut out[..n], n);
    }

    /// `out[b] = W · acts[b]` for several activation rows in one dispatch,
    /// `out` row-major with row stride `n` (at most [`Q80::rows`]): each
    /// group of four weight rows is loaded once and used for every
    /// activation row while it is in L1, so the head's weights (a third of
    /// the model's bytes) are streamed from memory once per decode step
    /// however many sequences share it. Each (weight row, activation row)
    /// dot product is computed exactly as by [`Q80::matvec`].
    pub fn matmul_rows(&self, acts: &[&Acts8], out: &mut [f32], n: usize) {
        let kb = self.k / QK;
        let n = n.min(self.n);
        assert!(out.len() >= acts.len() * n, "q8_0 matmul: output shorter than rows × n");
        let rows: Vec<&[ABlock]> = acts.iter().map(|a| &a.blocks[..kb]).collect();
        let w = &self.w;
        let out_ptr = out.as_mut_ptr() as usize;
        let groups = n.div_ceil(8);
        candle_core::utils::barrier_pool().execute_chunked(groups, |g| {
            let (start, end) = (g.start * 8, (g.end * 8).min(n));
            // SAFETY: each output column range [start, end) of every row belongs to exactly one group.
            let put = |b: usize, c: usize, v: &[f32]| unsafe {
                std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(b * n + c), v.len()).copy_from_slice(v)
            };
            let mut c = start;
            while c + 4 <= end {
                let ws = [&w[c * kb..], &w[(c + 1) * kb..], &w[(c + 2) * kb..], &w[(c + 3) * kb..]];
                for (b, a) in rows.iter().enumerate() {
                    // SAFETY: Q80 exists only on CPUs with AVX2 and FMA.
                    let v = unsafe { dot_4rows(kb, ws, a) };
                    put(b, c, &v);
                }
                c += 4;
            }
            for c in c..end {
                let r = &w[c * kb..];
                for (b, a) in rows.iter().enumerate() {
                    // SAFETY: as above.
                    let v = unsafe { dot_4rows(kb, [r, r, r, r], a) }[0];
                    put(b, c, &[v]);
                }
            }
        });
    }

    /// `x @ W^T` for x of shape (…, k), f32, row by row.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        let mut dims = x.dims().to_vec();
        let k = dims.pop().unwrap_or(0);
        if k != self.k {
            candle_core::bail!("q8_0 matmul: input {:?} does not match k = {}", x.shape(), self.k);
        }
        let m = dims.iter().product::<usize>();
        let (st, layout) = x.storage_and_layout();
        let xs = match &*st {
            Storage::Cpu(CpuStorage::F32(v)) => &v[layout.start_offset()..layout.start_offset() + m * k],
            _ => candle_core::bail!("q8_0 matmul: expected f32 on CPU"),
        };
        let mut acts = Acts8::new(k);
        let mut dst = vec![0f32; m * self.n];
        for (row, out) in xs.chunks_exact(k).zip(dst.chunks_exact_mut(self.n)) {
            acts.quantize(row);
            self.matvec(&acts, out);
        }
        dims.push(self.n);
        Tensor::from_vec(dst, dims, &Device::Cpu)
    }
}

/// Four weight rows against one activation row: |x|·sign(y, x) with
/// `maddubs`, eight-lane FMA sums, one horizontal sum at the end.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_4rows(kb: usize, w: [&[WBlock]; 4], a: &[ABlock]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 4];
    for i in 0..kb {
        let y = a.get_unchecked(i);
        let yv = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        for j in 0..4 {
            let x = w[j].get_unchecked(i);
            let xv = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            // |x| (unsigned) × y·sign(x): exact, |pair sum| ≤ 2·128·127 < 2^15.
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(yv, xv));
            let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
            let xd = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(x.d as i32)));
            acc[j] = _mm256_fmadd_ps(p, _mm256_set1_ps(xd * y.d), acc[j]);
        }
    }
    let mut out = [0f32; 4];
    for j in 0..4 {
        let v = acc[j];
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        out[j] = _mm_cvtss_f32(s);
    }
    out
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_4rows(_kb: usize, _w: [&[WBlock]; 4], _a: &[ABlock]) -> [f32; 4] {
    unreachable!("Q80::new returns None without AVX2")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Module;

    /// The batched LM head gives each row the bits of `matvec` on it alone.
    #[test]
    fn batched_rows_are_bit_identical_to_matvec() {
        let (n, k) = (39, 96);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let q = QTensor::quantize(&Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap(), GgmlDType::Q8_0).unwrap();
        let Some(w) = Q80::new(&q) else { return };
        let acts: Vec<Acts8> = (0..5)
            .map(|r| {
                let x: Vec<f32> = (0..k).map(|i| ((i + 31 * r) as f32 * 0.37).sin()).collect();
                let mut a = Acts8::new(k);
                a.quantize(&x);
                a
            })
            .collect();
        let refs: Vec<&Acts8> = acts.iter().collect();
        let mut out = vec![0f32; 5 * n];
        w.matmul_rows(&refs, &mut out, n);
        for (r, a) in acts.iter().enumerate() {
            let mut one = vec![0f32; n];
            w.matvec(a, &mut one);
            for (x, y) in out[r * n..(r + 1) * n].iter().zip(&one) {
                assert_eq!(x.to_bits(), y.to_bits(), "row {r}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn agrees_with_candle_q8_0() {
        let (n, k) = (37, 96);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let w = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let x: Vec<f32> = (0..2 * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::from_vec(x, (2, k), &Device::Cpu).unwrap();
        let ours = Q80::new(&q).expect("AVX2 machine").forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let reference = candle_core::quantized::QMatMul::from_qtensor(q).unwrap().forward(&x).unwrap();
        let reference = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in ours.iter().zip(&reference) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
        }
    }
}
