//! The last bytes of a stream, kept across chunks for the checks that look
//! back past a chunk's start: evidence around a match, where an escaped
//! region starts, the known-value search's held-back starts.

/// At most `MAX` of the last bytes remembered, oldest first; reads as the
/// slice of them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecentBytes<const MAX: usize> {
    bytes: Vec<u8>,
}

impl<const MAX: usize> RecentBytes<MAX> {
    /// No bytes, with the room they took (about twice `MAX` at most) kept
    /// for a later stream.
    pub(crate) fn forgotten(mut self) -> Self {
        self.bytes.clear();
        self
    }

    /// Appends `chunk`, dropping what is then more than `MAX` bytes back.
    pub(crate) fn remember(&mut self, chunk: &[u8]) {
        append_keeping_last(&mut self.bytes, chunk, MAX);
    }
}

/// Appends `chunk` to `bytes` and keeps only the last `n` bytes of the
/// two, copying no byte that is then dropped: the one way the scans keep
/// a stream's tail, whether its length is fixed or moves with the stream.
pub(crate) fn append_keeping_last(bytes: &mut Vec<u8>, chunk: &[u8], n: usize) {
    if chunk.len() >= n {
        bytes.clear();
        bytes.extend_from_slice(&chunk[chunk.len() - n..]);
    } else {
        let drop = (bytes.len() + chunk.len()).saturating_sub(n);
        bytes.drain(..drop);
        bytes.extend_from_slice(chunk);
    }
}

impl<const MAX: usize> std::ops::Deref for RecentBytes<MAX> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::{RecentBytes, append_keeping_last};
    use proptest::prelude::*;

    proptest! {
        /// After any chunks, the kept bytes are the last `MAX` of all of
        /// them.
        #[test]
        fn the_last_bytes_are_kept_whatever_the_chunks(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
        ) {
            const MAX: usize = 24;
            let (mut recent, max) = (RecentBytes::<MAX>::default(), MAX);
            let mut all = Vec::new();
            for chunk in &chunks {
                recent.remember(chunk);
                all.extend_from_slice(chunk);
                let want = &all[all.len().saturating_sub(max)..];
                prop_assert_eq!(&recent[..], want);
            }
        }

        /// With a bound that moves from call to call, what is kept is the
        /// last `n` bytes of what was kept and the new chunk.
        #[test]
        fn a_moving_bound_keeps_the_last_n_bytes(
            steps in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..40), 0usize..50),
                0..12,
            ),
        ) {
            let mut kept = Vec::new();
            for (chunk, n) in &steps {
                let all = [&kept[..], chunk].concat();
                append_keeping_last(&mut kept, chunk, *n);
                prop_assert_eq!(&kept[..], &all[all.len().saturating_sub(*n)..]);
            }
        }
    }
}
