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
//! [`key_tokens`](super::keys::key_tokens) for the details and examples.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;

use regex::Regex;
use regex::bytes::Regex as BytesRegex;
use serde::Deserialize;
use toml::Spanned;

use super::Confidence;
use super::keys::{Aliases, NormalizedKey, key_suffixes, key_tokens, normalize_key};
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

/// Declares a rule-file table with the pattern-rule fields (shared by a
/// `[[kind]]` and its `[[kind.also]]` tables) plus `$extra` fields. A macro
/// rather than `#[serde(flatten)]`: flatten breaks both
/// `deny_unknown_fields` (typo detection) and `Spanned` (line numbers).
macro_rules! raw_table {
    ($(#[$meta:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($extra)*
            pattern: Option<Spanned<String>>,
            validator: Option<Spanned<String>>,
            boundary: Option<Spanned<String>>,
            boundary_before: Option<Spanned<String>>,
            boundary_after: Option<Spanned<String>>,
            needs_key_context: Option<bool>,
            context_keys: Option<Vec<String>>,
            confidence: Option<Spanned<String>>,
            pair_group: Option<String>,
            list_min: Option<usize>,
        }
    };
}

raw_table!(
    /// One pattern rule (`[[kind.also]]`).
    RawPattern {}
);

raw_table!(
    /// One `[[kind]]` table; its own pattern fields are its first rule.
    RawKind {
        id: Spanned<String>,
        description: Option<String>,
        #[serde(default)]
        keys: Vec<String>,
        #[serde(default)]
        exact_keys: Vec<String>,
        #[serde(default)]
        placeholders: Vec<String>,
        min_value_len: Option<usize>,
        value_pattern: Option<Spanned<String>>,
        allow_list: Option<bool>,
        #[serde(default)]
        also: Vec<RawPattern>,
    }
);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default)]
    placeholders: Vec<String>,
    #[serde(default)]
    deny_context_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    kind: Vec<RawKind>,
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
    suffix_aliases: HashMap<String, usize>,
    /// Normalised alias → kind index, for `exact_keys` (whole key only).
    exact_aliases: HashMap<String, usize>,
    placeholders: HashSet<String>,
    deny_context: HashSet<String>,
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count();
    (
        before.iter().filter(|b| **b == b'\n').count() + 1,
        column + 1,
    )
}

fn line_of(text: &str, offset: usize) -> usize {
    line_col(text, offset).0
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
        Ok(set)
    }

    /// Rules from one TOML text alone; `origin` names it in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<RuleSet, RuleError> {
        let mut set = RuleSet::default();
        set.add_file(text, origin)?;
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
            return k.suffixes().find_map(|(suffix, whole)| {
                let exact = if whole {
                    self.exact_aliases.get(suffix)
                } else {
                    None
                };
                exact.or_else(|| self.suffix_aliases.get(suffix)).copied()
            });
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

    /// Every normalised alias, flagged `true` when it names its kind only
    /// as the whole key (`exact_keys`).
    pub(crate) fn key_aliases(&self) -> impl Iterator<Item = (&str, bool)> {
        let suffix = self.suffix_aliases.keys().map(|a| (a.as_str(), false));
        suffix.chain(self.exact_aliases.keys().map(|a| (a.as_str(), true)))
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
            return (0..k.tokens()).any(|i| self.deny_context.contains(k.token(i)))
                || self.deny_context.contains(k.joined());
        }
        let tokens = key_tokens(key);
        tokens.iter().any(|t| self.deny_context.contains(t))
            || self.deny_context.contains(&tokens.concat())
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

/// Context for error messages about one kind.
struct Site<'a> {
    text: &'a str,
    origin: &'a str,
    kind: &'a str,
    line: usize,
}

impl Site<'_> {
    fn line_at<T>(&self, spanned: &Spanned<T>) -> usize {
        line_of(self.text, spanned.span().start)
    }

    fn invalid(&self, line: usize, message: impl Into<String>) -> RuleError {
        RuleError::Invalid {
            origin: self.origin.to_string(),
            line,
            kind: self.kind.to_string(),
            message: message.into(),
        }
    }

    fn bad_regex(&self, line: usize, field: &'static str, err: impl ToString) -> RuleError {
        RuleError::BadRegex {
            origin: self.origin.to_string(),
            line,
            kind: self.kind.to_string(),
            field,
            message: err.to_string(),
        }
    }
}

impl RuleSet {
    /// Merges one rule file into the set, checking it as it goes.
    fn add_file(&mut self, text: &str, origin: &str) -> Result<(), RuleError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
            RuleError::Syntax {
                origin: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        for p in &raw.defaults.placeholders {
            self.placeholders.insert(fold_placeholder(p));
        }
        for k in &raw.defaults.deny_context_keys {
            self.deny_context.insert(normalize_key(k));
        }

        let mut seen_here: HashMap<String, usize> = HashMap::new();
        for rk in raw.kind {
            let id = rk.id.get_ref().clone();
            let site = Site {
                text,
                origin,
                kind: &id,
                line: line_of(text, rk.id.span().start),
            };
            let id_ok = id.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !id_ok {
                return Err(site.invalid(site.line, "id must match [a-z][a-z0-9_]*"));
            }
            if let Some(first) = seen_here.insert(id.clone(), site.line) {
                return Err(site.invalid(
                    site.line,
                    format!("defined twice in this file (first at line {first})"),
                ));
            }
            add_kind(self, &site, rk)?;
        }
        Ok(())
    }
}

fn add_kind(set: &mut RuleSet, site: &Site<'_>, mut rk: RawKind) -> Result<(), RuleError> {
    let index = match set.kinds.iter().position(|k| k.id == site.kind) {
        Some(i) => i,
        None => {
            set.kinds.push(Kind {
                id: site.kind.to_string(),
                description: String::new(),
                placeholders: HashSet::new(),
                min_value_len: 1,
                value_pattern: None,
                allow_list: false,
                patterns: Vec::new(),
                origin: site.origin.to_string(),
                line: site.line,
            });
            set.kinds.len() - 1
        }
    };
    for (alias, exact) in rk
        .keys
        .iter()
        .map(|k| (k, false))
        .chain(rk.exact_keys.iter().map(|k| (k, true)))
    {
        add_alias(set, site, index, alias, exact)?;
    }

    let kind = &mut set.kinds[index];
    if let Some(d) = rk.description {
        kind.description = d;
    }
    if let Some(n) = rk.min_value_len {
        kind.min_value_len = n.max(1);
    }
    if let Some(a) = rk.allow_list {
        kind.allow_list = a;
    }
    if let Some(vp) = &rk.value_pattern {
        let re = Regex::new(vp.get_ref())
            .map_err(|e| site.bad_regex(site.line_at(vp), "value_pattern", e))?;
        kind.value_pattern = Some(re);
    }
    kind.placeholders
        .extend(rk.placeholders.iter().map(|p| fold_placeholder(p)));

    // The kind's own pattern fields are its first rule.
    let primary = RawPattern {
        pattern: rk.pattern.take(),
        validator: rk.validator.take(),
        boundary: rk.boundary.take(),
        boundary_before: rk.boundary_before.take(),
        boundary_after: rk.boundary_after.take(),
        needs_key_context: rk.needs_key_context.take(),
        context_keys: rk.context_keys.take(),
        confidence: rk.confidence.take(),
        pair_group: rk.pair_group.take(),
        list_min: rk.list_min.take(),
    };
    let has_keys = set
        .suffix_aliases
        .values()
        .chain(set.exact_aliases.values())
        .any(|&i| i == index);
    let mut compiled = Vec::new();
    for raw in std::iter::once(primary).chain(rk.also) {
        if let Some(rule) = compile_pattern(site, raw, has_keys)? {
            compiled.push(rule);
        }
    }
    set.kinds[index].patterns.extend(compiled);
    Ok(())
}

fn add_alias(
    set: &mut RuleSet,
    site: &Site<'_>,
    index: usize,
    alias: &str,
    exact: bool,
) -> Result<(), RuleError> {
    let norm = normalize_key(alias);
    if norm.is_empty() {
        return Err(site.invalid(site.line, format!("key `{alias}` has no letters or digits")));
    }
    let owner = set
        .suffix_aliases
        .get(&norm)
        .or_else(|| set.exact_aliases.get(&norm));
    if let Some(&other) = owner
        && other != index
    {
        let k = &set.kinds[other];
        return Err(site.invalid(
            site.line,
            format!(
                "key `{alias}` already names kind `{}` ({}:{})",
                k.id, k.origin, k.line
            ),
        ));
    }
    let map = if exact {
        &mut set.exact_aliases
    } else {
        &mut set.suffix_aliases
    };
    map.insert(norm, index);
    Ok(())
}

fn compile_pattern(
    site: &Site<'_>,
    raw: RawPattern,
    kind_has_keys: bool,
) -> Result<Option<PatternRule>, RuleError> {
    let Some(pattern) = raw.pattern else {
        let stray = raw.validator.is_some()
            || raw.needs_key_context.is_some()
            || raw.boundary.is_some()
            || raw.context_keys.is_some()
            || raw.pair_group.is_some()
            || raw.list_min.is_some();
        if stray {
            return Err(site.invalid(site.line, "pattern settings given without a `pattern`"));
        }
        return Ok(None);
    };
    let line = site.line_at(&pattern);
    let regex =
        BytesRegex::new(pattern.get_ref()).map_err(|e| site.bad_regex(line, "pattern", e))?;
    // A rule that can match nothing would report empty values everywhere.
    if [&b""[..], b"a", b"0", b" "]
        .iter()
        .any(|probe| regex.find_iter(probe).any(|m| m.is_empty()))
    {
        return Err(site.invalid(line, "pattern can match the empty string"));
    }
    let validator = raw
        .validator
        .as_ref()
        .map(|v| {
            Validator::from_name(v.get_ref()).ok_or_else(|| RuleError::UnknownValidator {
                origin: site.origin.to_string(),
                line: site.line_at(v),
                kind: site.kind.to_string(),
                name: v.get_ref().clone(),
                known: Validator::known_names(),
            })
        })
        .transpose()?;
    let class = |field: &'static str,
                 v: &Option<Spanned<String>>|
     -> Result<Option<ByteClass>, RuleError> {
        v.as_ref()
            .map(|s| byte_class(s.get_ref()).map_err(|e| site.bad_regex(site.line_at(s), field, e)))
            .transpose()
    };
    let both = class("boundary", &raw.boundary)?.unwrap_or(ByteClass::NONE);
    let before = class("boundary_before", &raw.boundary_before)?.unwrap_or(both);
    let after = class("boundary_after", &raw.boundary_after)?.unwrap_or(both);
    let confidence = match raw.confidence.as_ref().map(|c| c.get_ref().as_str()) {
        None | Some("medium") => Confidence::Medium,
        Some("low") => Confidence::Low,
        Some("high") => Confidence::High,
        Some(other) => {
            let at = raw.confidence.as_ref().map_or(line, |c| site.line_at(c));
            return Err(site.invalid(
                at,
                format!("unknown confidence `{other}` (known: low, medium, high)"),
            ));
        }
    };
    let context_keys = raw.context_keys.map(|keys| Aliases::new(&keys));
    let needs_key_context = raw.needs_key_context.unwrap_or(false);
    if needs_key_context && !kind_has_keys && context_keys.as_ref().is_none_or(Aliases::is_empty) {
        return Err(site.invalid(line, "needs_key_context is set but the kind has no keys"));
    }
    let hold = match (raw.pair_group, raw.list_min) {
        (Some(_), Some(_)) => {
            return Err(site.invalid(line, "pair_group and list_min cannot be combined"));
        }
        (Some(g), None) => Hold::Pair(g),
        (None, Some(n)) if n >= 2 => Hold::List(n),
        (None, Some(_)) => return Err(site.invalid(line, "list_min must be at least 2")),
        (None, None) => Hold::Immediate,
    };
    Ok(Some(PatternRule {
        regex,
        validator,
        needs_key_context,
        context_keys,
        confidence,
        before,
        after,
        hold,
    }))
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
