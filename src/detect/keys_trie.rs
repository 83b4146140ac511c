//! Byte tries for key lookups: the aliases (read from a key's end, so one
//! walk finds every alias that ends the key) and the deny-context tokens.
//! A key lookup walks a few bytes and usually stops at the first one no
//! entry continues with, where hashing every token suffix of the key would
//! hash and compare several strings.

use super::NormalizedKey;

/// A trie over byte strings, each entry holding up to two values (`u32`).
#[derive(Debug, Clone)]
pub(crate) struct ByteTrie {
    /// Byte → symbol; 0 for bytes no entry holds.
    symbol: Vec<u8>,
    symbols: usize,
    /// `next[node * symbols + symbol]`: the child, or 0 (the root, node 0,
    /// is never a child).
    next: Vec<u32>,
    /// Per node: the values of the entry ending there (`u32::MAX`: none).
    values: Vec<[u32; 2]>,
    /// Per byte, what a walk over a key's letters and digits does with it
    /// (see [`ByteTrie::fold`]): the walks classify, lowercase and look up
    /// every byte, and one table read does all three.
    folded: Box<[u16; 256]>,
}

/// [`ByteTrie::fold`] of a byte that is ASCII but not a letter or digit,
/// which normalisation drops.
pub(crate) const FOLD_SKIP: u16 = 0x100;
/// [`ByteTrie::fold`] of a byte that is not ASCII.
pub(crate) const FOLD_OTHER: u16 = 0x101;

/// The value slot of an alias naming its kind as a key suffix (`keys`),
/// and as the whole key only (`exact_keys`).
pub(crate) const SUFFIX: usize = 0;
pub(crate) const EXACT: usize = 1;

impl Default for ByteTrie {
    fn default() -> ByteTrie {
        ByteTrie::new(std::iter::empty())
    }
}

impl ByteTrie {
    /// A trie of `entries`: (bytes, slot, value). An entry repeated in one
    /// slot keeps its last value.
    pub(crate) fn new<'a>(
        entries: impl Iterator<Item = (&'a [u8], usize, u32)> + Clone,
    ) -> ByteTrie {
        let mut symbol = vec![0u8; 256];
        let mut symbols = 1;
        for (bytes, _, _) in entries.clone() {
            for &b in bytes {
                if symbol[usize::from(b)] == 0 {
                    symbol[usize::from(b)] = u8::try_from(symbols).unwrap_or(0);
                    symbols += 1;
                }
            }
        }
        let folded = Box::new(std::array::from_fn(|b| {
            let b = b as u8;
            match b {
                _ if !b.is_ascii() => FOLD_OTHER,
                _ if !b.is_ascii_alphanumeric() => FOLD_SKIP,
                _ => u16::from(symbol[usize::from(b.to_ascii_lowercase())]),
            }
        }));
        let mut trie = ByteTrie {
            symbol,
            symbols,
            next: vec![0; symbols],
            values: vec![[u32::MAX; 2]],
            folded,
        };
        for (bytes, slot, value) in entries {
            let mut node = 0;
            for &b in bytes {
                let at = node * trie.symbols + usize::from(trie.symbol[usize::from(b)]);
                if trie.next[at] == 0 {
                    trie.next[at] = u32::try_from(trie.values.len()).unwrap_or(0);
                    trie.values.push([u32::MAX; 2]);
                    trie.next.resize(trie.values.len() * trie.symbols, 0);
                }
                node = trie.next[at] as usize;
            }
            trie.values[node][slot] = value;
        }
        trie
    }

    /// The child of `node` on byte `b`; 0 when no entry continues so.
    pub(crate) fn step(&self, node: usize, b: u8) -> usize {
        match self.symbol[usize::from(b)] {
            0 => 0,
            s => self.next[node * self.symbols + usize::from(s)] as usize,
        }
    }

    /// What a walk over a key's letters and digits, lowercased, does with
    /// byte `b`: [`FOLD_SKIP`], [`FOLD_OTHER`], or the symbol of its
    /// lowercase form to hand to [`ByteTrie::step_folded`] (0 when no
    /// entry holds it).
    pub(crate) fn fold(&self, b: u8) -> u16 {
        self.folded[usize::from(b)]
    }

    /// The child of `node` on a byte whose [`ByteTrie::fold`] is `symbol`
    /// (neither [`FOLD_SKIP`] nor [`FOLD_OTHER`]); 0 when no entry
    /// continues so. No entry's child hangs off symbol 0.
    pub(crate) fn step_folded(&self, node: usize, symbol: u16) -> usize {
        self.next[node * self.symbols + usize::from(symbol)] as usize
    }

    /// The symbol of byte `b` as it is (0 when no entry holds it).
    pub(crate) fn symbol(&self, b: u8) -> u8 {
        self.symbol[usize::from(b)]
    }

    /// Symbols per node (symbol 0 included, which no entry holds).
    pub(crate) fn symbols(&self) -> usize {
        self.symbols
    }

    /// Nodes, the root included.
    pub(crate) fn nodes(&self) -> usize {
        self.values.len()
    }

    /// The value in `slot` of the entry ending at `node`.
    pub(crate) fn value(&self, node: usize, slot: usize) -> Option<usize> {
        let v = self.values[node][slot];
        (v != u32::MAX).then_some(v as usize)
    }

    /// Whether an entry ends at `node` with a value in `slot`.
    pub(crate) fn ends_in(&self, node: usize, slot: usize) -> bool {
        self.values[node][slot] != u32::MAX
    }

    /// True if `bytes` is an entry (with a value in slot 0).
    pub(crate) fn contains(&self, bytes: &[u8]) -> bool {
        let mut node = 0;
        for &b in bytes {
            node = self.step(node, b);
            if node == 0 {
                return false;
            }
        }
        self.value(node, SUFFIX).is_some()
    }

    /// True if no entry, read backwards, ends the normalised form of `key`
    /// (its letters and digits, lowercased): for a trie of reversed
    /// aliases, `key` then names nothing. The walk usually stops at the
    /// key's last byte or two, without normalising the key. `false` when
    /// unsure: at a non-ASCII byte, which normalisation may keep.
    pub(crate) fn ends_no_entry(&self, key: &[u8]) -> bool {
        let mut node = 0;
        for &b in key.iter().rev() {
            node = match self.fold(b) {
                FOLD_OTHER => return false,
                FOLD_SKIP => continue,
                symbol => self.step_folded(node, symbol),
            };
            if node == 0 {
                return true;
            }
            if self.values[node] != [u32::MAX; 2] {
                return false;
            }
        }
        true
    }

    /// For a trie of reversed aliases: the kind of the longest token suffix
    /// of `key` that is an alias (`exact_keys` aliases only as the whole
    /// key), as [`super::key_suffixes`] orders them: at most the last 32
    /// tokens.
    pub(crate) fn kind_for(&self, key: &NormalizedKey) -> Option<usize> {
        let norm = key.joined().as_bytes();
        let first = key.tokens().saturating_sub(32);
        let (mut node, mut token, mut kind) = (0, key.tokens(), None);
        for i in (0..norm.len()).rev() {
            node = self.step(node, norm[i]);
            if node == 0 {
                break;
            }
            // Only a suffix starting at a token start counts.
            if token == 0 || key.token_start(token - 1) != i {
                continue;
            }
            token -= 1;
            if token < first {
                break;
            }
            let exact = if token == 0 {
                self.value(node, EXACT)
            } else {
                None
            };
            kind = exact.or(self.value(node, SUFFIX)).or(kind);
        }
        kind
    }
}
