//! Bit planes of 64 bytes: the transpose that turns per-byte class bits
//! into one 64-bit map per class, for the class-table way of
//! [`super::Classifier`].

/// Sets bit `i` of `out[j]` to bit `j` of `bytes[i]`.
pub(super) fn bit_planes(bytes: &[u8; 64], out: &mut [u64; 8]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    // SAFETY: this build targets CPUs with SSE2 (every x86-64 CPU has it).
    unsafe {
        sse2(bytes, out)
    };
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    portable(bytes, out);
}

/// Eight bytes at a time: a multiplication gathers one bit of each.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
pub(super) fn portable(bytes: &[u8; 64], out: &mut [u64; 8]) {
    /// Bit 0 of each byte.
    const LOW_BITS: u64 = 0x0101_0101_0101_0101;
    /// Moves bit 0 of byte `k` to bit `56 + k`; no two partial products
    /// meet, so nothing carries.
    const GATHER: u64 = 0x0102_0408_1020_4080;
    *out = [0; 8];
    for (w, chunk) in bytes.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
        for (j, o) in out.iter_mut().enumerate() {
            let bits = ((x >> j) & LOW_BITS).wrapping_mul(GATHER) >> 56;
            *o |= bits << (8 * w);
        }
    }
}

/// Sixteen bytes at a time: a shift moves bit `j` of each byte to its top
/// bit, which `movemask` collects.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
pub(super) fn sse2(bytes: &[u8; 64], out: &mut [u64; 8]) {
    use std::arch::x86_64::{
        __m128i, _mm_cvtsi32_si128, _mm_loadu_si128, _mm_movemask_epi8, _mm_sll_epi16,
    };
    let lanes: [__m128i; 4] = std::array::from_fn(|k| {
        let lane = &bytes[16 * k..16 * (k + 1)];
        // SAFETY: `lane` is 16 readable bytes, and `loadu` needs no alignment.
        unsafe { _mm_loadu_si128(lane.as_ptr().cast()) }
    });
    for (j, o) in (0i32..).zip(out.iter_mut()) {
        // Shifting 16-bit lanes left by `7 - j` puts bit `j` of both bytes
        // of a lane at their top bits.
        let shift = _mm_cvtsi32_si128(7 - j);
        let mut bits = 0u64;
        for (k, lane) in lanes.iter().enumerate() {
            let mask = _mm_movemask_epi8(_mm_sll_epi16(*lane, shift)) as u16;
            bits |= u64::from(mask) << (16 * k);
        }
        *o = bits;
    }
}
