use proptest::prelude::*;

use super::*;

fn set_of(bytes: &[u8]) -> ByteSet {
    ByteSet::matching(|b| bytes.contains(&b))
}

/// Haystacks from a few bytes, so that sets of them are often hit.
fn hay() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop::sample::select(b"ab.@%-:+x".to_vec()), 0..200)
}

proptest! {
    #[test]
    fn a_finder_names_the_first_byte_of_its_set(
        members in proptest::collection::vec(prop::sample::select(b"ab.@%-:+x".to_vec()), 1..6),
        hay in hay(),
    ) {
        // One to three distinct bytes take `memchr`; more, the byte loop.
        let set = set_of(&members);
        let want = hay.iter().position(|&b| set.contains(b));
        prop_assert_eq!(RequiredFinder::new(set).find(&hay), want);
    }

    #[test]
    fn the_search_ahead_answers_as_a_fresh_search_would(
        hay in hay(),
        asks in proptest::collection::vec((0usize..200, 0usize..70, 0usize..2), 0..40),
    ) {
        let sets = [set_of(b"@%"), set_of(b".")];
        let finders = sets.map(RequiredFinder::new);
        let mut ahead = Ahead::new();
        // Candidates come in order; each asks about one set within its
        // rule's reach.
        let mut asks = asks;
        asks.sort_by_key(|&(p, _, _)| p);
        for (p, within, r) in asks {
            let p = p.min(hay.len());
            let reach = (p + within + 1).min(hay.len());
            let want = hay[p..reach].iter().any(|&b| sets[r].contains(b));
            prop_assert_eq!(ahead.occurs(&finders[r], &hay, r, p, reach), want, "p {} reach {}", p, reach);
        }
    }
}
