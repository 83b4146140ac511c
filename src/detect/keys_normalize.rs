//! Key normalisation without allocating, for the hot path: every `=`, `:`
//! and `<tag>` in traffic has its key looked up, and almost none name an
//! identifier.

/// A key split into tokens and normalised without allocating: ASCII keys
/// of at most 256 bytes (what key lookups meet on the hot path). Gives the
/// same tokens as [`super::key_tokens`].
pub(crate) struct NormalizedKey {
    norm: [u8; 256],
    len: usize,
    /// Where each token starts in `norm`.
    starts: [u16; 129],
    tokens: usize,
}

impl NormalizedKey {
    /// `None` for keys the fast path does not handle (non-ASCII, long).
    pub(crate) fn new(key: &str) -> Option<NormalizedKey> {
        let b = key.as_bytes();
        if !key.is_ascii() || b.len() > 256 {
            return None;
        }
        let mut k = NormalizedKey {
            norm: [0; 256],
            len: 0,
            starts: [0; 129],
            tokens: 0,
        };
        for (i, &c) in b.iter().enumerate() {
            if !c.is_ascii_alphanumeric() {
                continue;
            }
            let in_token = i > 0 && b[i - 1].is_ascii_alphanumeric();
            // The camelCase rules of `key_tokens`.
            let split = in_token && c.is_ascii_uppercase() && {
                let prev = b[i - 1];
                let next_lower = b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
                prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next_lower)
            };
            if !in_token || split {
                if k.tokens == k.starts.len() {
                    return None;
                }
                k.starts[k.tokens] = k.len as u16;
                k.tokens += 1;
            }
            k.norm[k.len] = c.to_ascii_lowercase();
            k.len += 1;
        }
        Some(k)
    }

    fn text(&self, from: usize, to: usize) -> &str {
        std::str::from_utf8(&self.norm[from..to]).unwrap_or_default()
    }

    /// Token `i`, lowercase.
    pub(crate) fn token(&self, i: usize) -> &str {
        let end = self.starts.get(i + 1).filter(|_| i + 1 < self.tokens);
        self.text(
            usize::from(self.starts[i]),
            end.map_or(self.len, |e| usize::from(*e)),
        )
    }

    pub(crate) fn tokens(&self) -> usize {
        self.tokens
    }

    /// The tokens joined: [`super::normalize_key`].
    pub(crate) fn joined(&self) -> &str {
        self.text(0, self.len)
    }

    /// As [`super::key_suffixes`], without allocating.
    pub(crate) fn suffixes(&self) -> impl Iterator<Item = (&str, bool)> {
        let first = self.tokens.saturating_sub(32);
        (first..self.tokens)
            .map(move |i| (self.text(usize::from(self.starts[i]), self.len), i == 0))
    }
}
