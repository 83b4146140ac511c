//! The reversed-alias trie laid out for [`super::candidates`]' walk back
//! from a key end, which steps on nearly every key the traffic holds.
//!
//! The walk waits on its loads: each step's address comes from the last
//! step's load. [`ByteTrie`] answers a step with a byte-class lookup, a
//! multiply into its child table, and for the end test a read of a second
//! table, with its nodes numbered as the aliases were added, so the rows
//! the walks read most are spread over the whole table. Here a byte's walk
//! action and the key syntaxes it may appear in are one table entry; each
//! child entry is the child's row offset with its end flags, so a step is
//! one add and one load and the end test reads the entry at hand; and rows
//! are laid out breadth first, so the shallow nodes every walk passes
//! share a few cache lines. The bytes of a non-ASCII letter step on their
//! own symbols through the same table, so the walk needs no copy of the
//! trie.

use super::{ByteTrie, EXACT, FOLD_OTHER, FOLD_SKIP, SUFFIX};

/// Bits of a [`AliasWalk::byte`] entry: the key syntaxes that may hold the
/// byte (the low byte, the caller's), and what the walk does with it.
pub(super) const SKIP: u32 = 1 << 8;
pub(super) const OTHER: u32 = 1 << 9;
const SYMBOL_SHIFT: u32 = 16;

/// Bits of a child entry below [`ROW_SHIFT`]: an alias ends at the child.
pub(super) const ENDS_SUFFIX: u32 = 1;
pub(super) const ENDS_EXACT: u32 = 2;
const ROW_SHIFT: u32 = 2;

/// See the module docs.
pub(super) struct AliasWalk {
    /// Per byte: the syntaxes' bits; [`SKIP`] for ASCII that is no letter
    /// or digit; and from [`SYMBOL_SHIFT`] on the symbol of the byte's
    /// lowercase form, or for a byte of 0x80 and above ([`OTHER`]) of the
    /// byte itself (0: no alias holds it).
    bytes: Box<[u32; 256]>,
    /// Row `r` (of the trie's symbol count) holds the children of the
    /// `r`-th node in breadth-first order: each child's entry (see
    /// [`AliasWalk::child`]), or 0 where no alias continues (the root, row
    /// 0, is never a child).
    children: Box<[u32]>,
}

impl AliasWalk {
    /// The walk over `trie`'s nodes; `syntaxes[b]` holds the low-byte bits
    /// of the key syntaxes byte `b` may appear in.
    pub(super) fn new(trie: &ByteTrie, syntaxes: &[u8; 256]) -> AliasWalk {
        let symbols = trie.symbols();
        let bytes = Box::new(std::array::from_fn(|b| {
            let b = b as u8;
            let action = match trie.fold(b) {
                FOLD_SKIP => SKIP,
                FOLD_OTHER => OTHER | u32::from(trie.symbol(b)) << SYMBOL_SHIFT,
                symbol => u32::from(symbol) << SYMBOL_SHIFT,
            };
            action | u32::from(syntaxes[usize::from(b)])
        }));
        let order = breadth_first(trie);
        let mut rows = vec![0; trie.nodes()];
        for (row, &node) in order.iter().enumerate() {
            rows[node] = row;
        }
        // A child's entry: its row's offset (which fits: a trie has far
        // fewer than 2^30 child slots, its own table of them being
        // `u32`s) and its end flags.
        let entry = |node: usize| {
            let offset = u32::try_from(rows[node] * symbols).unwrap_or(0);
            let flag = |slot, flag| if trie.ends_in(node, slot) { flag } else { 0 };
            offset << ROW_SHIFT | flag(SUFFIX, ENDS_SUFFIX) | flag(EXACT, ENDS_EXACT)
        };
        let children = order
            .iter()
            .flat_map(|&node| (0..symbols).map(move |s| trie.step_folded(node, s as u16)))
            .map(|child| if child == 0 { 0 } else { entry(child) })
            .collect();
        AliasWalk { bytes, children }
    }

    /// The entry of byte `b`.
    #[inline]
    pub(super) fn byte(&self, b: u8) -> u32 {
        self.bytes[usize::from(b)]
    }

    /// The child of node entry `at` (0 for the root) on a byte whose entry
    /// is `byte` (not [`SKIP`]): its entry, or 0 when no alias continues
    /// so.
    #[inline]
    pub(super) fn child(&self, at: u32, byte: u32) -> u32 {
        let slot = (at >> ROW_SHIFT) as usize + (byte >> SYMBOL_SHIFT) as usize;
        self.children.get(slot).copied().unwrap_or(0)
    }
}

/// `trie`'s nodes, breadth first from the root.
fn breadth_first(trie: &ByteTrie) -> Vec<usize> {
    let mut order = vec![0];
    let mut next = 0;
    while let Some(&node) = order.get(next) {
        next += 1;
        let children = (1..trie.symbols()).map(|s| trie.step_folded(node, s as u16));
        order.extend(children.filter(|&c| c != 0));
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::RuleSet;

    /// Walking a byte string through the layout follows the trie: it
    /// stops where the trie stops, with the trie's end flags on the way,
    /// and shallower nodes come first.
    #[test]
    fn every_walk_follows_the_trie() {
        let rules = RuleSet::embedded();
        let trie = rules.alias_trie();
        let walk = AliasWalk::new(trie, &[0xff; 256]);
        let words = [
            "diordna", "iemi", "di", "cam", "liame", "xyz", "dia", "ime", "gnl",
        ];
        let (mut ends, mut depth_of_row) = (0, Vec::new());
        for word in words {
            let (mut node, mut at) = (0, 0);
            for (depth, &b) in word.as_bytes().iter().enumerate() {
                node = trie.step(node, b);
                at = walk.child(at, walk.byte(b));
                assert_eq!(at == 0, node == 0, "{word} at {depth}");
                if node == 0 {
                    break;
                }
                assert_eq!(at & ENDS_SUFFIX != 0, trie.ends_in(node, SUFFIX));
                assert_eq!(at & ENDS_EXACT != 0, trie.ends_in(node, EXACT));
                ends += usize::from(at & (ENDS_SUFFIX | ENDS_EXACT) != 0);
                depth_of_row.push((at >> ROW_SHIFT, depth));
            }
        }
        assert!(ends >= 3, "imei, mac, email end on the way");
        depth_of_row.sort();
        assert!(depth_of_row.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(walk.byte(b'-') & SKIP != 0 && walk.byte(0xe4) & OTHER != 0);
    }

    /// A key of non-ASCII letters is walked on its raw bytes: a user's
    /// alias `设备号` (device number) is found from its last byte.
    #[test]
    fn non_ascii_aliases_are_walked_on_their_bytes() {
        let entries = [("设备号".bytes().rev().collect::<Vec<u8>>(), SUFFIX, 0)];
        let trie = ByteTrie::new(entries.iter().map(|(b, s, v)| (&b[..], *s, *v)));
        let walk = AliasWalk::new(&trie, &[0xff; 256]);
        let at = "设备号"
            .bytes()
            .rev()
            .fold(0, |at, b| walk.child(at, walk.byte(b)));
        assert_eq!(at & ENDS_SUFFIX, ENDS_SUFFIX);
        let other = "设备名"
            .bytes()
            .rev()
            .fold(0, |at, b| walk.child(at, walk.byte(b)));
        assert_eq!(other, 0);
    }
}
