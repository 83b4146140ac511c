//! The checks a pattern candidate goes through once its regex matched
//! (boundaries, digests, validators, placeholders), and the key context
//! they need: which key a value is assigned to, and what that key names.

use std::borrow::Cow;

use super::shape::ByteSet;
use super::{HEX_BLOB_LEN, PatternScanner, ScanRule};
use crate::detect::keys::{Aliases, ByteTrie, NormalizedKey, SUFFIX, normalize_key};
use crate::detect::percent::escape_at;
use crate::detect::rules::PatternRule;
use crate::detect::rules::RuleSet;
use crate::detect::seen::SeenContexts;
use walk::{inside_token, key_and_reach, nearest_key, opens_array, opens_value};

/// The key a value is assigned to, and the kind that key names.
pub(super) struct KeyInfo<'b> {
    key: Option<Cow<'b, str>>,
    /// The key normalised once for every lookup, when it is short ASCII.
    norm: Option<NormalizedKey>,
    kind: Option<usize>,
}

/// [`KeyInfo::allows`] for every pre-pass rule at once, as bit masks (bit
/// `i` is the scanner's rule `pre_rules[i]`): one key lookup per position
/// settles every rule, before any rule's own checks run.
pub(super) struct KeyMasks {
    /// Rules that need no key.
    keyless: u64,
    /// Per kind: the rules a key naming the kind allows (all its rules but
    /// those with context keys).
    by_kind: Vec<u64>,
    /// Rules with context keys: their bit and scanner index.
    context: Vec<(u64, usize)>,
    /// Their bits, and all their context keys reversed.
    context_rules: u64,
    context_trie: ByteTrie,
}

impl KeyMasks {
    pub(super) fn new(scan: &[ScanRule], pre_rules: &[usize], kinds: usize) -> KeyMasks {
        let mut masks = KeyMasks {
            keyless: 0,
            by_kind: vec![0; kinds],
            context: Vec::new(),
            context_rules: 0,
            context_trie: ByteTrie::default(),
        };
        let mut context_keys = Vec::new();
        for (bit, &i) in pre_rules.iter().enumerate() {
            let (rule, b) = (&scan[i].rule, 1u64 << bit);
            if let (true, Some(aliases)) = (rule.needs_key_context, &rule.context_keys) {
                masks.context.push((b, i));
                masks.context_rules |= b;
                context_keys.extend(aliases.iter().map(|a| a.bytes().rev().collect::<Vec<u8>>()));
                continue;
            }
            masks.by_kind[scan[i].kind] |= b;
            if !rule.needs_key_context {
                masks.keyless |= b;
            }
        }
        masks.context_trie = ByteTrie::new(context_keys.iter().map(|k| (&k[..], SUFFIX, 0)));
        masks
    }

    /// The rules of `m` that the key before the value at `buf[s]` allows:
    /// [`KeyInfo::allows`] for every rule of `m`. The outcome is taken
    /// from `verdicts` when the bytes before the value were seen before,
    /// and the key's verdict when the key was.
    #[inline]
    pub(super) fn allowed_at(
        &self,
        rules: &RuleSet,
        scan: &[ScanRule],
        verdicts: &mut KeyVerdicts,
        (buf, s): (&[u8], usize),
        m: u64,
    ) -> u64 {
        if inside_token(buf, s) {
            return m & self.keyless;
        }
        let seen = verdicts.contexts.get(buf, s);
        if let Some(ok) = seen.and_then(|outcome| self.allowed_by(outcome, m)) {
            return ok;
        }
        let (key, reach) = key_and_reach(buf, s);
        let outcome = match key {
            None => KeyOutcome::NoKey,
            Some(k) => self.outcome_of(rules, scan, verdicts, &buf[k], m),
        };
        if let Some(len) = reach.decided_by(s) {
            verdicts.contexts.put(buf, s, len, outcome);
        }
        self.allowed_by(outcome, m).unwrap_or(0)
    }

    /// What `key` says, as far as `m` needs: most keys before a candidate
    /// name nothing (`ts`, `order_id`, `request_id`), and when every rule
    /// of `m` needs a key naming its kind or one of its context keys, a
    /// walk back from the key's end through the alias tries settles that,
    /// without normalising the key.
    fn outcome_of(
        &self,
        rules: &RuleSet,
        scan: &[ScanRule],
        verdicts: &mut KeyVerdicts,
        key: &[u8],
        m: u64,
    ) -> KeyOutcome {
        if m & self.keyless == 0 && rules.alias_trie().ends_no_entry(key) {
            let context_too = self.context_trie.ends_no_entry(key);
            if context_too || m & self.context_rules == 0 {
                return KeyOutcome::NamesNothing { context_too };
            }
        }
        KeyOutcome::Judged(verdicts.get_or_judge(key, |k| self.judge(rules, scan, k)))
    }

    /// The rules of `m` that `outcome` allows; `None` when it does not
    /// say (a key that names nothing, asked about rules without a key).
    #[inline]
    fn allowed_by(&self, outcome: KeyOutcome, m: u64) -> Option<u64> {
        match outcome {
            KeyOutcome::NoKey => Some(m & self.keyless),
            KeyOutcome::NamesNothing { context_too } => {
                let settled = m & self.keyless == 0 && (context_too || m & self.context_rules == 0);
                settled.then_some(0)
            }
            KeyOutcome::Judged(v) => {
                let ok = match v.kind {
                    Some(kind) => m & self.by_kind[kind],
                    None if v.deny_context => 0,
                    None => m & self.keyless,
                };
                Some(ok | m & v.context)
            }
        }
    }

    /// What `key` says about every rule: see [`KeyVerdict`].
    fn judge(&self, rules: &RuleSet, scan: &[ScanRule], key: &[u8]) -> KeyVerdict {
        let info = KeyInfo::of(rules, Some(key));
        let k = info.key.as_deref().unwrap_or_default();
        let context = self
            .context
            .iter()
            .filter(|&&(_, i)| {
                let aliases = scan[i].rule.context_keys.as_ref();
                aliases.is_some_and(|a| info.matches(a, k))
            })
            .fold(0, |ok, &(bit, _)| ok | bit);
        KeyVerdict {
            kind: info.kind,
            deny_context: info.kind.is_none() && info.is_deny_context(rules, k),
            context,
        }
    }
}

/// What one key says about the pre-pass rules, whatever the value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct KeyVerdict {
    /// The kind the key names: that kind's rules are allowed, no others.
    kind: Option<usize>,
    /// It names none, and values under it are not identifiers (`ts`,
    /// `order_id`): no rule is allowed but by a context key.
    deny_context: bool,
    /// The rules with context keys whose keys it matches.
    context: u64,
}

/// What the key before a value says.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) enum KeyOutcome {
    /// No key before the value.
    #[default]
    NoKey,
    /// A key no alias ends, and, with `context_too`, no context key
    /// either: it names nothing, and no rule that needs a key allows it.
    /// Whether its values are identifiers at all was not asked.
    NamesNothing { context_too: bool },
    /// The key's verdict.
    Judged(KeyVerdict),
}

/// Keys the pre-pass has judged in one stream, by their bytes. Traffic
/// repeats a few dozen keys (an analytics batch's every record has the same
/// ones), and judging a key means decoding, normalising and looking it up.
///
/// A table of [`KEY_VERDICTS`] slots, a key's slot chosen by its length
/// and end words ([`KeyWords`]); a key judged into a taken slot replaces
/// the one there. Candidates ask about ~100,000 keys per 4 MiB of text, so
/// a lookup is a few word compares, not a hash of the bytes and a call to
/// compare them. Before the key is even found, the outcomes by the bytes
/// before a value ([`SeenContexts`]) answer most candidates.
#[derive(Default)]
pub(super) struct KeyVerdicts {
    /// Empty until the first key is judged (streams hand sets on, and most
    /// never judge one); then `KEY_VERDICTS` slots.
    slots: Vec<Option<(KeyWords, KeyVerdict)>>,
    /// What the keys before values said, by the bytes before the values.
    contexts: SeenContexts<KeyOutcome>,
}

/// Slots of a [`KeyVerdicts`] (each key at most `MAX_KEY_LEN` bytes;
/// nearest_key returns none longer).
pub(super) const KEY_VERDICTS: usize = 256;

/// A key's bytes in the form a [`KeyVerdicts`] compares: its length and
/// two words that hold its ends, which together are the whole of a key of
/// up to 16 bytes; a longer key's other bytes are kept on the side.
#[derive(Clone)]
struct KeyWords {
    len: usize,
    ends: [u64; 2],
    middle: Box<[u8]>,
}

impl KeyWords {
    /// The end words of `key`: its first and last eight bytes (which
    /// overlap when it is shorter than 16), its first and last four when
    /// shorter than 8, or its bytes in one word when shorter than 4.
    fn ends(key: &[u8]) -> [u64; 2] {
        let n = key.len();
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("eight bytes"));
        let half = |b: &[u8]| u64::from(u32::from_le_bytes(b.try_into().expect("four bytes")));
        match n {
            8.. => [word(&key[..8]), word(&key[n - 8..])],
            4.. => [half(&key[..4]), half(&key[n - 4..])],
            _ => [key.iter().fold(0, |w, &b| w << 8 | u64::from(b)), 0],
        }
    }

    /// The bytes of `key` its end words leave out.
    fn middle(key: &[u8]) -> &[u8] {
        key.get(8..key.len().saturating_sub(8)).unwrap_or_default()
    }

    /// True if `key`, whose end words are `ends`, is this key.
    fn is(&self, key: &[u8], ends: [u64; 2]) -> bool {
        self.len == key.len()
            && self.ends == ends
            && (self.middle.is_empty() || *self.middle == *Self::middle(key))
    }
}

impl KeyVerdicts {
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    fn get_or_judge(&mut self, key: &[u8], judge: impl FnOnce(&[u8]) -> KeyVerdict) -> KeyVerdict {
        if self.slots.is_empty() {
            self.slots.resize(KEY_VERDICTS, None);
        }
        let ends = KeyWords::ends(key);
        let mixed = (ends[0] ^ ends[1].rotate_left(29) ^ key.len() as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The top bits, which every bit of the words reaches.
        let i = (mixed >> (64 - KEY_VERDICTS.ilog2())) as usize;
        let slot = &mut self.slots[i % KEY_VERDICTS];
        if let Some((known, v)) = slot
            && known.is(key, ends)
        {
            return *v;
        }
        let v = judge(key);
        let words = KeyWords {
            len: key.len(),
            ends,
            middle: KeyWords::middle(key).into(),
        };
        *slot = Some((words, v));
        v
    }
}

impl<'b> KeyInfo<'b> {
    /// The key the value at `buf[s]` is assigned to, if any, and what it
    /// names.
    pub(super) fn at(rules: &RuleSet, buf: &'b [u8], s: usize) -> KeyInfo<'b> {
        KeyInfo::of(rules, nearest_key(buf, s))
    }

    fn of(rules: &RuleSet, key: Option<&'b [u8]>) -> KeyInfo<'b> {
        let key = key.map(String::from_utf8_lossy);
        let norm = key.as_deref().and_then(NormalizedKey::new);
        let kind = match &norm {
            Some(n) => rules.kind_index_for_normalized(n),
            None => key.as_deref().and_then(|k| rules.kind_index_for_key(k)),
        };
        KeyInfo { key, norm, kind }
    }

    fn is_deny_context(&self, rules: &RuleSet, key: &str) -> bool {
        match &self.norm {
            Some(n) => rules.is_deny_context_normalized(n),
            None => rules.is_deny_context(key),
        }
    }

    fn matches(&self, aliases: &Aliases, key: &str) -> bool {
        match &self.norm {
            Some(n) => aliases.matches_normalized(n),
            None => aliases.matches(key),
        }
    }

    /// The key checks of the module docs for a hit of `sr`.
    pub(super) fn allows(&self, rules: &RuleSet, sr: &ScanRule) -> bool {
        let key = self.key.as_deref();
        if sr.rule.needs_key_context {
            return match (&sr.rule.context_keys, key) {
                (Some(aliases), Some(k)) => self.matches(aliases, k),
                (None, Some(_)) => self.kind == Some(sr.kind),
                (_, None) => false,
            };
        }
        match (key, self.kind) {
            (Some(_), Some(other)) => other == sr.kind,
            (Some(k), None) => !self.is_deny_context(rules, k),
            (None, _) => true,
        }
    }
}

/// Applies every check of the module docs to the candidate `buf[ms..me]`;
/// returns its text if it stands.
///
/// The second string is the item's list group: the normalised key it is
/// assigned to, or empty when it has none or the key names its kind.
pub(super) fn evaluate(
    scanner: &PatternScanner,
    buf: &[u8],
    sr: &ScanRule,
    ms: usize,
    me: usize,
) -> Option<(String, String)> {
    let rule = &sr.rule;
    if blocked_before(rule, buf, ms) {
        return None;
    }
    if me < buf.len() && rule.after.contains(buf[me]) {
        return None;
    }
    let bytes = &buf[ms..me];
    if bytes.iter().all(u8::is_ascii_hexdigit) && in_hex_blob(buf, ms, me) {
        return None;
    }
    let value = std::str::from_utf8(bytes).ok()?;
    if rule.validator.is_some_and(|v| !v.check(value)) {
        return None;
    }
    let rules = &scanner.rules;
    if rules.is_placeholder(&rules.kinds()[sr.kind].id, value) {
        return None;
    }
    let key = KeyInfo::at(rules, buf, ms);
    if !key.allows(rules, sr) {
        return None;
    }
    // The first item of `"k": ["com.a", …]` belongs to the list, not to
    // the key before it.
    let group = match (key.kind, key.key) {
        (None, Some(k)) if !opens_array(buf, ms) => normalize_key(&k),
        _ => String::new(),
    };
    Some((value.to_string(), group))
}

pub(super) fn join_truncated(items: &[String], max: usize) -> String {
    let mut out = String::new();
    for item in items {
        let extra = usize::from(!out.is_empty()) + item.len();
        if out.len() + extra > max {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(item);
    }
    out
}

/// True if the all-hex candidate `buf[ms..me]` is part of a longer hex run
/// of at least `HEX_BLOB_LEN` bytes.
fn in_hex_blob(buf: &[u8], ms: usize, me: usize) -> bool {
    let mut left = ms;
    while left > ms.saturating_sub(HEX_BLOB_LEN)
        && buf[left - 1].is_ascii_hexdigit()
        && escaped_before(buf, left).is_none()
    {
        left -= 1;
    }
    let mut right = me;
    let hi = (me + HEX_BLOB_LEN).min(buf.len());
    while right < hi && buf[right].is_ascii_hexdigit() {
        right += 1;
    }
    (left < ms || right > me) && right - left >= HEX_BLOB_LEN
}

/// True if no match of `rule` may start at `buf[i]` because of the byte
/// before it. A `%XX` escape right before counts as the byte it encodes
/// (`%22490154203237518` is a quoted IMEI).
pub(super) fn blocked_before(rule: &PatternRule, buf: &[u8], i: usize) -> bool {
    let before = escaped_before(buf, i).or_else(|| i.checked_sub(1).map(|p| buf[p]));
    before.is_some_and(|b| rule.before.contains(b))
}

/// The bytes right before a position that rule out a match of `rule`
/// starting there, for the pre-pass: those its `boundary_before` refuses
/// and, when it needs a key, every byte after which no key is found (the
/// value starts inside a token, see [`inside_token`]). Where a `%XX`
/// escape ends right before, the byte it encodes is what is refused, and
/// no key is found after an escaped byte of this set either.
pub(super) fn refused_before(rule: &PatternRule) -> ByteSet {
    ByteSet::matching(|b| rule.before.contains(b) || rule.needs_key_context && !opens_value(b))
}

/// The byte encoded by a `%XX` escape ending right before `buf[i]`.
pub(super) fn escaped_before(buf: &[u8], i: usize) -> Option<u8> {
    escape_at(buf, i.checked_sub(3)?)
}

#[path = "patterns_context_walk.rs"]
mod walk;

#[cfg(test)]
#[path = "patterns_context_tests.rs"]
mod tests;
