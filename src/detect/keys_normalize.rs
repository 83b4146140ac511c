//! How keys are compared with aliases: tokens, normalisation, and a
//! non-allocating form for the hot path (every candidate key in traffic is
//! looked up, and almost none name an identifier).

/// Alias and key-token tables: looked up for every candidate key in
/// traffic, so hashed with foldhash rather than SipHash. Their contents
/// come from the rule files; traffic only looks them up.
pub(crate) type KeyMap<V> = foldhash::HashMap<String, V>;
pub(crate) type KeySet = foldhash::HashSet<String>;

/// A set of normalised aliases.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    suffix: KeySet,
}

impl Aliases {
    /// Normalises `keys`; keys without letters or digits are dropped.
    pub fn new(keys: &[String]) -> Aliases {
        let suffix = keys
            .iter()
            .map(|k| normalize_key(k))
            .filter(|k| !k.is_empty());
        Aliases {
            suffix: suffix.collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.suffix.is_empty()
    }

    /// The aliases, normalised.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.suffix.iter().map(String::as_str)
    }

    /// True if `key` (any spelling) equals an alias or ends with one, by the
    /// token rules of [`key_tokens`].
    pub fn matches(&self, key: &str) -> bool {
        match NormalizedKey::new(key) {
            Some(k) => self.matches_normalized(&k),
            None => key_suffixes(key).any(|(suffix, _)| self.suffix.contains(&suffix)),
        }
    }

    /// [`Self::matches`] for a key already normalised.
    pub(crate) fn matches_normalized(&self, key: &NormalizedKey) -> bool {
        key.suffixes()
            .any(|(suffix, _)| self.suffix.contains(suffix))
    }
}

/// Splits a key into lowercase tokens: on every character that is not
/// alphanumeric and on camelCase boundaries.
///
/// # How keys name kinds
///
/// A key is normalised into lowercase tokens, split on every character that
/// is not alphanumeric and on camelCase boundaries (`deviceIMEIValue` →
/// `device`, `imei`, `value`; `x-device-imei` → `x`, `device`, `imei`).
/// Aliases are normalised the same way and compared with the tokens joined
/// without separators, so `mac_address`, `macAddress` and `macaddress` are one
/// alias. A key names kind K when
///
/// 1. the whole key equals one of K's `keys` or `exact_keys`, or
/// 2. a suffix of its tokens — the last token, the last two, … — equals one of
///    K's `keys` (`user.phone`, `device_imei`, `wifiMac`).
///
/// The longest matching suffix wins, so the more specific alias decides:
/// `wifi_ap_mac` is a BSSID (`ap_mac`), not a device MAC (`mac`), and
/// `id_card_no` is an ID card (`id_card_no`), not a bank card (`card_no`).
/// Tokens are never matched by substring: `machine`, `macro`, `imei_count`
/// and `phone_model` name nothing. `exact_keys` hold aliases too generic to
/// match as a suffix (`sn`, `mc`, `apps`): `sn` is a serial, `order_sn` is not.
pub fn key_tokens(key: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_uppercase() && !current.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // `deviceImei`, `wifi2Mac`: lower/digit → upper starts a token;
            // `IMEIValue`: the last capital of a run starts the next word.
            if prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_lower) {
                tokens.push(std::mem::take(&mut current));
            }
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// The normalised form of an alias or key: its tokens joined.
pub fn normalize_key(key: &str) -> String {
    key_tokens(key).concat()
}

/// Every token suffix of `key`, longest (the whole key, flagged `true`)
/// first. Keys are capped at 32 tokens: nothing real is longer, and it
/// bounds the work an adversarial key can cause.
pub(crate) fn key_suffixes(key: &str) -> impl Iterator<Item = (String, bool)> {
    let tokens = key_tokens(key);
    let start = tokens.len().saturating_sub(32);
    (start..tokens.len()).map(move |i| (tokens[i..].concat(), i == 0))
}

/// Longest key [`NormalizedKey`] takes: the key scanner reads keys of at
/// most 96 bytes, the pattern scanner's key context 48.
const MAX_FAST_KEY: usize = 96;

/// A key split into tokens and normalised without allocating: ASCII keys
/// of at most `MAX_FAST_KEY` bytes (what key lookups meet on the hot path).
/// Gives the same tokens as [`key_tokens`].
pub(crate) struct NormalizedKey {
    norm: [u8; MAX_FAST_KEY],
    len: usize,
    /// Where each token starts in `norm`.
    starts: [u8; MAX_FAST_KEY / 2 + 1],
    tokens: usize,
}

impl NormalizedKey {
    /// `None` for keys the fast path does not handle (non-ASCII, long).
    pub(crate) fn new(key: &str) -> Option<NormalizedKey> {
        let b = key.as_bytes();
        if !key.is_ascii() || b.len() > MAX_FAST_KEY {
            return None;
        }
        let mut k = NormalizedKey {
            norm: [0; MAX_FAST_KEY],
            len: 0,
            starts: [0; MAX_FAST_KEY / 2 + 1],
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
                k.starts[k.tokens] = k.len as u8;
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

    /// Where token `i` starts in [`Self::joined`].
    pub(crate) fn token_start(&self, i: usize) -> usize {
        usize::from(self.starts[i])
    }

    pub(crate) fn tokens(&self) -> usize {
        self.tokens
    }

    /// The tokens joined: [`normalize_key`].
    pub(crate) fn joined(&self) -> &str {
        self.text(0, self.len)
    }

    /// As [`key_suffixes`], without allocating.
    pub(crate) fn suffixes(&self) -> impl Iterator<Item = (&str, bool)> {
        let first = self.tokens.saturating_sub(32);
        (first..self.tokens)
            .map(move |i| (self.text(usize::from(self.starts[i]), self.len), i == 0))
    }
}
