//! What the CPU running this can do, for the few scans with a vector
//! path: asked once, when a scanner is built.

/// True when the CPU has AVX2 (always false off x86-64).
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// True when the CPU has AVX-512 with byte and word instructions
/// (AVX-512F and BW; always false off x86-64).
pub(crate) fn has_avx512bw() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
