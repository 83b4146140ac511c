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
//! share a few cache lines.

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
    /// Per byte: the syntaxes' bits, [`SKIP`] or [`OTHER`], or the symbol
    /// of its lowercase form from [`SYMBOL_SHIFT`] on (0: no alias holds
    /// it).
    bytes: Box<[u32; 256]>,
    /// Row `r` (of `symbols` entries) holds the children of the `r`-th
    /// node in breadth-first order: each child's entry ([`AliasWalk::child`]),
    /// or 0 where no alias continues (the root, row 0, is never a child).
    children: Box<[u32]>,
    /// The trie node of each row, and the row of each trie node, for the
    /// walk's rare steps through the trie itself.
    nodes: Box<[u32]>,
    rows: Box<[u32]>,
    /// Each node's end flags, by trie node.
    ends: Box<[u8]>,
    symbols: usize,
}

impl AliasWalk {
    /// The walk over `trie`'s nodes; `syntaxes[b]` holds the low-byte bits
    /// of the key syntaxes byte `b` may appear in.
    pub(super) fn new(trie: &ByteTrie, syntaxes: &[u8; 256]) -> AliasWalk {
        let symbols = trie.symbols();
        let bytes = Box::new(std::array::from_fn(|b| {
            let action = match trie.fold(b as u8) {
                FOLD_SKIP => SKIP,
                FOLD_OTHER => OTHER,
                symbol => u32::from(symbol) << SYMBOL_SHIFT,
            };
            action | u32::from(syntaxes[b])
        }));
        let order = breadth_first(trie);
        let mut rows = vec![0u32; trie.nodes()];
        for (row, &node) in order.iter().enumerate() {
            rows[node] = u32::try_from(row).unwrap_or(0);
        }
        let flag = |n, slot, flag: u32| if trie.ends_in(n, slot) { flag as u8 } else { 0 };
        let ends = (0..trie.nodes())
            .map(|n| flag(n, SUFFIX, ENDS_SUFFIX) | flag(n, EXACT, ENDS_EXACT))
            .collect();
        let mut walk = AliasWalk {
            bytes,
            children: Box::default(),
            nodes: order.iter().map(|&n| n as u32).collect(),
            rows: rows.into(),
            ends,
            symbols,
        };
        walk.children = order
            .iter()
            .flat_map(|&node| (0..symbols).map(move |s| trie.step_folded(node, s as u16)))
            .map(|child| walk.entry_of(child))
            .collect();
        walk
    }

    /// The entry of byte `b`.
    #[inline]
    pub(super) fn byte(&self, b: u8) -> u32 {
        self.bytes[usize::from(b)]
    }

    /// The child of node entry `at` (0 for the root) on a byte whose entry
    /// is `byte` (neither [`SKIP`] nor [`OTHER`]): its entry, or 0 when no
    /// alias continues so.
    #[inline]
    pub(super) fn child(&self, at: u32, byte: u32) -> u32 {
        let slot = (at >> ROW_SHIFT) as usize + (byte >> SYMBOL_SHIFT) as usize;
        self.children.get(slot).copied().unwrap_or(0)
    }

    /// The trie node of node entry `at`.
    pub(super) fn node(&self, at: u32) -> usize {
        let row = (at >> ROW_SHIFT) as usize / self.symbols;
        self.nodes.get(row).map_or(0, |&n| n as usize)
    }

    /// The entry of trie node `node`: its row's offset and its end flags
    /// (0 for the root, which no walk steps back to). Offsets fit: a trie
    /// has far fewer than 2^30 child slots, its own table of them being
    /// `u32`s.
    pub(super) fn entry_of(&self, node: usize) -> u32 {
        match (node, self.rows.get(node), self.ends.get(node)) {
            (1.., Some(&row), Some(&ends)) => {
                let offset = u32::try_from(row as usize * self.symbols).unwrap_or(0);
                offset << ROW_SHIFT | u32::from(ends)
            }
            _ => 0,
        }
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

    fn trie_node(trie: &ByteTrie, word: &[u8]) -> usize {
        word.iter().fold(0, |node, &b| trie.step(node, b))
    }

    /// Walking any byte string through the layout reaches the trie's node
    /// with its end flags, or stops where the trie stops; and shallower
    /// nodes come first.
    #[test]
    fn every_walk_reaches_the_tries_node() {
        let rules = RuleSet::embedded();
        let trie = rules.alias_trie();
        let walk = AliasWalk::new(trie, &[0xff; 256]);
        let words = [
            "diordna", "iemi", "di", "cam", "liame", "xyz", "dia", "ime", "gnl",
        ];
        let mut depth_of_row = Vec::new();
        for word in words {
            let (mut node, mut at) = (0, 0);
            for (depth, &b) in word.as_bytes().iter().enumerate() {
                node = trie.step(node, b);
                at = walk.child(at, walk.byte(b));
                assert_eq!(at == 0, node == 0, "{word} at {depth}");
                if node == 0 {
                    break;
                }
                assert_eq!(walk.node(at), node);
                assert_eq!(walk.entry_of(node), at);
                assert_eq!(at & ENDS_SUFFIX != 0, trie.ends_in(node, SUFFIX));
                assert_eq!(at & ENDS_EXACT != 0, trie.ends_in(node, EXACT));
                depth_of_row.push(((at >> ROW_SHIFT) as usize / walk.symbols, depth));
            }
        }
        assert!(walk.entry_of(trie_node(trie, b"iemi")) & ENDS_SUFFIX != 0);
        depth_of_row.sort();
        assert!(depth_of_row.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(walk.byte(b'-') & SKIP != 0 && walk.byte(0xe4) & OTHER != 0);
    }
}
