//! Reading rule files into a [`RuleSet`]: the TOML tables, and the checks
//! that make a bad file fail with its file and line.

use std::collections::HashMap;

use regex::Regex;
use regex::bytes::Regex as BytesRegex;
use serde::Deserialize;
use toml::Spanned;

use super::*;

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
    pub(super) fn add_file(&mut self, text: &str, origin: &str) -> Result<(), RuleError> {
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
