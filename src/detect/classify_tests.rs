use proptest::prelude::*;

use super::*;

/// Bit `b` of a 256-bit set.
fn contains(set: &[u64; 4], b: u8) -> bool {
    set[usize::from(b >> 6)] >> (b & 63) & 1 == 1
}

/// Bit `p` of `at_least(a, &run_shifts(len))` by its definition.
fn naive_at_least(a: u64, len: usize, p: usize) -> bool {
    (p..p + len).all(|q| q < 64 && a >> q & 1 == 1)
}

proptest! {
    #[test]
    fn run_lengths_match_their_definition(a in any::<u64>(), len in 1usize..=HALF + 1) {
        let got = at_least(a, &run_shifts(len));
        for p in 0..HALF {
            prop_assert_eq!(got >> p & 1 == 1, naive_at_least(a, len, p), "p={}", p);
        }
    }

    #[test]
    fn both_transposes_agree_with_the_definition(bytes in proptest::array::uniform32(any::<u16>())) {
        let bytes: [u8; 64] = std::array::from_fn(|i| (bytes[i / 2] >> (8 * (i % 2))) as u8);
        let mut want = [0u64; 8];
        for (i, b) in bytes.iter().enumerate() {
            for (j, w) in want.iter_mut().enumerate() {
                *w |= u64::from(b >> j & 1) << i;
            }
        }
        let mut got = [0u64; 8];
        transpose::portable(&bytes, &mut got);
        prop_assert_eq!(got, want);
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        {
            // SAFETY: the build targets CPUs with SSE2.
            unsafe { transpose::sse2(&bytes, &mut got) };
            prop_assert_eq!(got, want);
        }
    }

    /// Every way of sorting a block's bytes gives each set's map by its
    /// definition, for sets with and without non-ASCII bytes, and bytes
    /// past the data's end are in no set.
    #[test]
    fn every_classifier_agrees_with_the_definition(
        sets in proptest::collection::vec(
            prop_oneof![
                proptest::array::uniform4(any::<u64>()),
                proptest::array::uniform2(any::<u64>()).prop_map(|w| [w[0], w[1], 0, 0]),
            ],
            1..=SLOTS,
        ),
        bytes in proptest::collection::vec(any::<u8>(), 64..=64),
        len in 0usize..=64,
    ) {
        let mut c = Classifier::new();
        for set in &sets {
            prop_assert!(c.add(|b| contains(set, b)).is_some());
        }
        let block: &[u8; 64] = bytes[..].try_into().unwrap();
        let want: Vec<u64> = sets
            .iter()
            .map(|set| (0..64).fold(0, |m, i| m | u64::from(contains(set, block[i])) << i))
            .collect();
        prop_assert_eq!(&c.by_table(block)[..sets.len()], &want[..]);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            let got = unsafe { c.by_nibbles(block) };
            prop_assert_eq!(&got[..sets.len()], &want[..]);
        }
        #[cfg(target_arch = "x86_64")]
        if c.avx512 {
            // SAFETY: `avx512` says the CPU has AVX-512F and BW.
            let got = unsafe { c.by_nibbles512(block) };
            prop_assert_eq!(&got[..sets.len()], &want[..]);
        }
        let inside = if len == 64 { u64::MAX } else { (1 << len) - 1 };
        let tail = c.maps(&bytes[..len], 0);
        for (got, want) in tail.iter().zip(&want) {
            prop_assert_eq!(*got, want & inside);
        }
    }

    /// One slot's maps of a whole buffer, made in one pass, are the
    /// blocks' maps one by one, with the CPU's AVX-512 and AVX2 and
    /// without.
    #[test]
    fn one_slots_maps_are_each_blocks_maps(
        sets in proptest::collection::vec(proptest::array::uniform4(any::<u64>()), 1..=4),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        slot in 0usize..4,
    ) {
        let slot = slot % sets.len();
        let mut c = Classifier::new();
        for set in &sets {
            prop_assert!(c.add(|b| contains(set, b)).is_some());
        }
        let want: Vec<u64> = (0..bytes.len())
            .step_by(BLOCK)
            .map(|at| c.maps(&bytes, at)[slot])
            .collect();
        let mut got = vec![7];
        c.slot_maps(&bytes, slot, &mut got);
        prop_assert_eq!(&got, &want);
        // Each vector path in turn, down to the class table.
        c.avx512 = false;
        c.slot_maps(&bytes, slot, &mut got);
        prop_assert_eq!(&got, &want);
        c.avx2 = false;
        c.slot_maps(&bytes, slot, &mut got);
        prop_assert_eq!(&got, &want);
    }
}
