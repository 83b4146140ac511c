//! Identifier rules: which keys name which identifier, what an identifier
//! looks like, and which values are harmless placeholders.
//!
//! Rules are data. The shipped set lives in `detectors/identifiers.toml`
//! (compiled in, see [`RuleSet::embedded`]); users add `*.toml` files in the
//! same format ([`RuleSet::load`]). Each `[[kind]]` table describes one
//! identifier kind; the file's header comment documents every field.
//!
//! # Key matching
//!
//! [`RuleSet::kind_for_key`] splits a key into tokens (`deviceIMEI`,
//! `device_imei`, `x-device-imei` are all `device` + `imei`) and matches the
//! whole key against `keys` and `exact_keys`, then ever shorter token
//! suffixes against `keys` only; the longest match wins. See
//! [`key_tokens`] for the details and examples.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use regex::Regex;
use regex::bytes::Regex as BytesRegex;

use super::Confidence;
use super::keys::{
    Aliases, ByteTrie, EXACT, KeyMap, KeySet, NormalizedKey, SUFFIX, key_suffixes, key_tokens,
    normalize_key,
};
use super::patterns::{ByteClass, Hold, byte_class};
use super::validate::Validator;

const EMBEDDED_TEXT: &str = include_str!("../../detectors/identifiers.toml");
const EMBEDDED_ORIGIN: &str = "detectors/identifiers.toml";

/// Why a rule file could not be loaded. Every variant's message starts with
/// `file:line` (plus `:column` for TOML syntax and type errors).
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// Not valid TOML, or a field has the wrong type or an unknown name.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// `validator = "..."` names no built-in validator.
    #[error("{origin}:{line}: kind `{kind}`: unknown validator `{name}` (known: {known})")]
    UnknownValidator {
        origin: String,
        line: usize,
        kind: String,
        name: String,
        known: String,
    },
    /// A regular expression (or boundary class) does not compile.
    #[error("{origin}:{line}: kind `{kind}`: bad regex in `{field}`: {message}")]
    BadRegex {
        origin: String,
        line: usize,
        kind: String,
        field: &'static str,
        message: String,
    },
    /// Any other inconsistency (duplicate kind, alias claimed twice, …).
    #[error("{origin}:{line}: kind `{kind}`: {message}")]
    Invalid {
        origin: String,
        line: usize,
        kind: String,
        message: String,
    },
    /// A rule directory or file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One compiled pattern rule of a kind.
#[derive(Debug, Clone)]
pub struct PatternRule {
    pub regex: BytesRegex,
    pub validator: Option<Validator>,
    /// Hits count only when a key naming this kind (or one of
    /// `context_keys`) sits right before the value.
    pub needs_key_context: bool,
    pub context_keys: Option<Aliases>,
    pub confidence: Confidence,
    /// Bytes that must not come right before / after a hit.
    pub before: ByteClass,
    pub after: ByteClass,
    pub hold: Hold,
}

/// One identifier kind, compiled.
#[derive(Debug, Clone)]
pub struct Kind {
    pub id: String,
    pub description: String,
    placeholders: HashSet<String>,
    min_value_len: usize,
    value_pattern: Option<Regex>,
    /// Key/value detection reports JSON arrays under this kind's keys.
    pub allow_list: bool,
    pub patterns: Vec<PatternRule>,
    /// Where it was first defined, for error messages.
    origin: String,
    line: usize,
}

/// A compiled, merged set of identifier rules. Cheap to clone (regexes share
/// their compiled programs).
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    kinds: Vec<Kind>,
    /// Normalised alias → kind index, for `keys` (whole key or suffix).
    suffix_aliases: KeyMap<usize>,
    /// Normalised alias → kind index, for `exact_keys` (whole key only).
    exact_aliases: KeyMap<usize>,
    placeholders: KeySet,
    deny_context: KeySet,
    /// The aliases reversed, for one-walk lookups (built once every file
    /// is in).
    alias_trie: ByteTrie,
    /// `deny_context`, as a trie.
    deny_trie: ByteTrie,
}

fn fold_placeholder(value: &str) -> String {
    let v = value.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v);
    v.trim().to_lowercase()
}

impl RuleSet {
    /// The rules shipped with leakscope (`detectors/identifiers.toml`,
    /// compiled in). A unit test loads them, so this cannot fail at run time.
    pub fn embedded() -> RuleSet {
        RuleSet::from_toml(EMBEDDED_TEXT, EMBEDDED_ORIGIN)
            .expect("the embedded detectors/identifiers.toml is tested to load")
    }

    /// Embedded rules plus every `*.toml` file directly inside each of
    /// `dirs`, in directory order then file-name order. A user file can add
    /// kinds, or extend an existing kind by repeating its `id`: keys,
    /// exact keys, placeholders and pattern rules are added; `description`,
    /// `min_value_len`, `value_pattern` and `allow_list` replace the old
    /// value. A directory that cannot be read is an error (a typo in a path
    /// must not silently disable custom rules).
    pub fn load(dirs: &[PathBuf]) -> Result<RuleSet, RuleError> {
        let mut set = RuleSet::from_toml(EMBEDDED_TEXT, EMBEDDED_ORIGIN)?;
        for dir in dirs {
            let io = |source| RuleError::Io {
                path: dir.clone(),
                source,
            };
            let mut files: Vec<PathBuf> = fs::read_dir(dir)
                .map_err(io)?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
                .collect();
            files.sort();
            for path in files {
                let text = fs::read_to_string(&path).map_err(|source| RuleError::Io {
                    path: path.clone(),
                    source,
                })?;
                set.add_file(&text, &path.display().to_string())?;
            }
        }
        set.build_index();
        Ok(set)
    }

    /// Rules from one TOML text alone; `origin` names it in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<RuleSet, RuleError> {
        let mut set = RuleSet::default();
        set.add_file(text, origin)?;
        set.build_index();
        Ok(set)
    }

    /// Which identifier kind `key` names, if any (see the module docs).
    pub fn kind_for_key(&self, key: &str) -> Option<&str> {
        self.kind_index_for_key(key)
            .map(|i| self.kinds[i].id.as_str())
    }

    pub(crate) fn kind_index_for_key(&self, key: &str) -> Option<usize> {
        if key.len() > 256 {
            return None;
        }
        if let Some(k) = NormalizedKey::new(key) {
            return self.kind_index_for_normalized(&k);
        }
        for (suffix, whole) in key_suffixes(key) {
            if whole && let Some(&i) = self.exact_aliases.get(&suffix) {
                return Some(i);
            }
            if let Some(&i) = self.suffix_aliases.get(&suffix) {
                return Some(i);
            }
        }
        None
    }

    /// [`Self::kind_index_for_key`] for a key already normalised.
    pub(crate) fn kind_index_for_normalized(&self, key: &NormalizedKey) -> Option<usize> {
        self.alias_trie.kind_for(key)
    }

    /// The aliases reversed, as a trie (`SUFFIX` and `EXACT` values: the
    /// kind index).
    pub(crate) fn alias_trie(&self) -> &ByteTrie {
        &self.alias_trie
    }

    /// Builds the lookup tries once every rule file is in.
    fn build_index(&mut self) {
        let reversed = |map: &KeyMap<usize>, slot| {
            map.iter()
                .map(|(alias, &kind)| (alias.bytes().rev().collect(), slot, kind as u32))
                .collect::<Vec<(Vec<u8>, usize, u32)>>()
        };
        let mut entries = reversed(&self.suffix_aliases, SUFFIX);
        entries.extend(reversed(&self.exact_aliases, EXACT));
        self.alias_trie = ByteTrie::new(entries.iter().map(|(b, s, v)| (&b[..], *s, *v)));
        let deny = self.deny_context.iter().map(|t| (t.as_bytes(), SUFFIX, 0));
        self.deny_trie = ByteTrie::new(deny);
    }

    /// True if `value` is not a real identifier of kind `identifier`: empty,
    /// a placeholder of that kind or a default placeholder (`null`,
    /// `unknown`, `0`… compared case-insensitively, surrounding whitespace
    /// and one pair of double quotes ignored), or a value whose only
    /// alphanumeric characters are zeros (`0.0`, `00:00:00:00:00:00`,
    /// `0000-…`). Unknown identifiers get the default checks only.
    pub fn is_placeholder(&self, identifier: &str, value: &str) -> bool {
        let folded = fold_placeholder(value);
        if folded.is_empty()
            || self.placeholders.contains(&folded)
            || folded
                .chars()
                .filter(|c| c.is_alphanumeric())
                .all(|c| c == '0')
        {
            return true;
        }
        self.kinds
            .iter()
            .find(|k| k.id == identifier)
            .is_some_and(|k| k.placeholders.contains(&folded))
    }

    /// True if `value`, found under a key naming `identifier`, is worth
    /// reporting: not a placeholder, at least the kind's `min_value_len`
    /// bytes long (after trimming), and matching its `value_pattern` if it
    /// has one. False for unknown identifiers.
    pub fn accepts_key_value(&self, identifier: &str, value: &str) -> bool {
        let Some(kind) = self.kinds.iter().find(|k| k.id == identifier) else {
            return false;
        };
        let v = value.trim();
        !self.is_placeholder(identifier, v)
            && v.len() >= kind.min_value_len
            && kind.value_pattern.as_ref().is_none_or(|re| re.is_match(v))
    }

    /// True if a key that names no identifier marks values that are not
    /// identifiers whatever they look like (`timestamp`, `order_id`,
    /// `trace_id`): one of its tokens, or the whole normalised key, is in
    /// `deny_context_keys`.
    pub fn is_deny_context(&self, key: &str) -> bool {
        if let Some(k) = NormalizedKey::new(key) {
            return self.is_deny_context_normalized(&k);
        }
        let tokens = key_tokens(key);
        tokens.iter().any(|t| self.deny_context.contains(t))
            || self.deny_context.contains(&tokens.concat())
    }

    /// [`Self::is_deny_context`] for a key already normalised.
    pub(crate) fn is_deny_context_normalized(&self, key: &NormalizedKey) -> bool {
        (0..key.tokens()).any(|i| self.deny_trie.contains(key.token(i).as_bytes()))
            || self.deny_trie.contains(key.joined().as_bytes())
    }

    /// The kinds, in definition order.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The kind with this id.
    pub fn kind(&self, identifier: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.id == identifier)
    }
}

#[path = "rules_load.rs"]
mod load;

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
