//! Folding the block filter's groups into fewer, where that saves the
//! lanes work; see [`fold_groups`].

use super::{RuleNeeds, common_required};
use crate::detect::patterns::shape::ByteSet;

/// Groups the filter tests at a time (the AVX2 lanes of a quad).
const QUAD: usize = 4;

/// Folds groups into others where a group's rules pass the other's tests
/// whenever they pass their own: its alphabet lies inside the other's, the
/// folded group refuses before a match only the bytes both refuse, and
/// requires a set only where both require it. Its positions are then
/// measured over the wider alphabet (a hex run may hold a `-`) and from
/// the shorter of the two shortest matches; its rules' own checks still
/// decide, so the filter lets more positions through, and folds are made
/// only where they save lane work:
///
/// - until the groups fill a quad fewer, keeping required sets (pairs that
///   refuse the same bytes first); if no quad can be saved, nothing is
///   folded;
/// - then groups with a required set into groups without, where that
///   makes the groups with one fill whole quads and frees one of the
///   reach steps (a quad whose groups require nothing skips them); if it
///   does not, nothing more is folded.
///
/// The embedded rules fold four groups of eleven: digits into digits and
/// `X`, hex into hex and `-`, decimals into coordinate pairs, and phone
/// numbers starting with `+` into formatted ones. Returns the alphabets
/// folded away.
pub(super) fn fold_groups(members: &mut Vec<(ByteSet, Vec<&RuleNeeds>)>) -> Vec<ByteSet> {
    let (mut groups, mut folded) = fold_a_quad_away(members).unwrap_or_default();
    if folded.is_empty() {
        groups = members.clone();
    }
    if let Some((rest, more)) = free_a_quad_of_reaches(&groups) {
        groups = rest;
        folded.extend(more);
    }
    *members = groups;
    folded
}

/// The groups with the requiring ones filling whole quads, and the
/// alphabets folded away, if folding requiring groups into groups that
/// require nothing gets there and frees a quad of the reach steps (so
/// not where all requiring groups share one quad).
fn free_a_quad_of_reaches<'r>(groups: &[(ByteSet, Vec<&'r RuleNeeds>)]) -> Option<Folded<'r>> {
    let requiring = groups
        .iter()
        .filter(|(_, rs)| common_required(rs).is_some())
        .count();
    if requiring <= QUAD || requiring % QUAD == 0 {
        return None;
    }
    let mut groups = groups.to_vec();
    let mut folded = Vec::new();
    for _ in 0..requiring % QUAD {
        let f = folds(&groups).find(|f| !f.keeps_required)?;
        folded.push(f.apply(&mut groups));
    }
    Some((groups, folded))
}

/// The groups with a quad fewer, and the alphabets folded away, if folds
/// that keep required sets get there.
type Folded<'r> = (Vec<(ByteSet, Vec<&'r RuleNeeds>)>, Vec<ByteSet>);

fn fold_a_quad_away<'r>(members: &[(ByteSet, Vec<&'r RuleNeeds>)]) -> Option<Folded<'r>> {
    let target = members
        .len()
        .div_ceil(QUAD)
        .checked_sub(1)
        .filter(|&q| q > 0)?
        * QUAD;
    let mut groups = members.to_vec();
    let mut folded = Vec::new();
    while groups.len() > target {
        let fold = folds(&groups).find(|f| f.keeps_required && f.same_refused);
        let f = fold.or_else(|| folds(&groups).find(|f| f.keeps_required))?;
        folded.push(f.apply(&mut groups));
    }
    Some((groups, folded))
}

/// Group `narrow` folded into group `wide`; see [`fold_groups`].
struct Fold {
    narrow: usize,
    wide: usize,
    same_refused: bool,
    /// Both require the same set; otherwise `narrow` requires one and
    /// `wide` none.
    keeps_required: bool,
}

impl Fold {
    /// Folds `narrow` into `wide`; returns the alphabet folded away.
    fn apply(&self, groups: &mut Vec<(ByteSet, Vec<&RuleNeeds>)>) -> ByteSet {
        let (alphabet, rules) = groups.remove(self.narrow);
        let wide = self.wide - usize::from(self.wide > self.narrow);
        groups[wide].1.extend(rules);
        alphabet
    }
}

/// The folds [`fold_groups`] may make, in order of the groups.
fn folds<'g>(groups: &'g [(ByteSet, Vec<&RuleNeeds>)]) -> impl Iterator<Item = Fold> + 'g {
    let refused = |rs: &[&RuleNeeds]| {
        rs.iter().fold(ByteSet([u64::MAX; 4]), |all, r| {
            all.intersect(r.refused_before)
        })
    };
    let required = |rs: &[&RuleNeeds]| common_required(rs).map(|(set, _)| set);
    let n = groups.len();
    (0..n).flat_map(move |narrow| {
        (0..n).filter_map(move |wide| {
            let ((a, ra), (b, rb)) = (&groups[narrow], &groups[wide]);
            let inside = narrow != wide && a.intersect(*b) == *a;
            let keeps_required = required(ra) == required(rb);
            let drops_required = required(ra).is_some() && required(rb).is_none();
            (inside && (keeps_required || drops_required)).then(|| Fold {
                narrow,
                wide,
                same_refused: refused(ra) == refused(rb),
                keeps_required,
            })
        })
    })
}
