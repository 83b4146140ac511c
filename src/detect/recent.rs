//! The last bytes of a stream, kept across chunks for the checks that look
//! back past a chunk's start: evidence around a match, where an escaped
//! region starts.

/// At most `MAX` of the last bytes remembered, oldest first; reads as the
/// slice of them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecentBytes<const MAX: usize> {
    bytes: Vec<u8>,
}

impl<const MAX: usize> RecentBytes<MAX> {
    /// Appends `chunk`, dropping what is then more than `MAX` bytes back.
    pub(crate) fn remember(&mut self, chunk: &[u8]) {
        if chunk.len() >= MAX {
            self.bytes.clear();
            self.bytes.extend_from_slice(&chunk[chunk.len() - MAX..]);
        } else {
            let drop = (self.bytes.len() + chunk.len()).saturating_sub(MAX);
            self.bytes.drain(..drop);
            self.bytes.extend_from_slice(chunk);
        }
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
    use super::RecentBytes;
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
    }
}
