//! Who received a flow: the catalogue of third-party SDK endpoints.
//!
//! The catalogue is data: `detectors/sdks.toml`, compiled in, plus `[[sdk]]`
//! entries from user rule directories, which add entries or replace them by
//! name. Each entry names one SDK product, its vendor and categories, and
//! the domains (optionally narrowed to path prefixes) it sends to.
//! [`SdkCatalogue::lookup`] runs once per flow and costs one hash probe per
//! label of the host. Bad data is an error citing `file:line`, the entry and
//! the problem. The format is documented in `detectors/README.md`.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The category vocabulary (what each covers is in `detectors/README.md`).
/// An entry lists one or more; the first is its primary category.
pub const CATEGORIES: &[&str] = &[
    "analytics",
    "advertising",
    "attribution",
    "push",
    "crash-reporting",
    "social-login",
    "social-share",
    "payment",
    "maps-location",
    "customer-support",
    "fingerprinting",
    "a-b-testing",
    "login-phone-number",
    "session-replay",
];

const EMBEDDED_TEXT: &str = include_str!("../../detectors/sdks.toml");
/// How errors in the built-in catalogue name their file.
const EMBEDDED_ORIGIN: &str = "detectors/sdks.toml";

/// The `sdk` object of a finding (`{name, vendor, category}`, the category
/// being the entry's primary one). The findings contract owns the type;
/// [`Sdk::info`] builds it.
pub use super::finding::SdkInfo;

/// One catalogue entry, validated: every domain is a lowercase host name,
/// every category is in [`CATEGORIES`] (and there is at least one), and the
/// entry has at least one domain or `path_anywhere` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdk {
    pub name: String,
    pub vendor: String,
    /// At least one; the first is the primary category.
    pub categories: Vec<String>,
    /// `cn`, `global`, or absent.
    pub region: Option<String>,
    /// Hosts that equal one of these or are a subdomain of one.
    pub domains: Vec<String>,
    /// When non-empty, the entry matches its domains only for paths that
    /// start with one of these.
    pub paths: Vec<String>,
    /// Path prefixes that name this SDK on any host (see [`SdkCatalogue::lookup`]).
    pub path_anywhere: Vec<String>,
    origin: String,
    line: usize,
}

impl Sdk {
    /// The finding's view of this entry.
    pub fn info(&self) -> SdkInfo {
        SdkInfo {
            name: self.name.clone(),
            vendor: self.vendor.clone(),
            category: self.categories.first().cloned().unwrap_or_default(),
        }
    }

    /// Where the entry was defined: file and line of its `[[sdk]]` header.
    pub fn defined_at(&self) -> (&str, usize) {
        (&self.origin, self.line)
    }

    fn at(&self) -> String {
        format!("{}:{}", self.origin, self.line)
    }

    fn error(&self, problem: EntryProblem) -> CatalogueError {
        CatalogueError::entry(&self.origin, self.line, &self.name, problem)
    }
}

/// A problem with catalogue data, or a rules directory that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, a value of the wrong type, a missing or unknown field.
    /// `line` is where the parser points (line 1 in the rare case it cannot).
    #[error("{origin}:{line}: {message}")]
    Toml {
        origin: String,
        line: usize,
        message: String,
    },
    /// An entry that is wrong on its own or conflicts with another one.
    /// `line` is that of the entry's `[[sdk]]` header.
    #[error("{origin}:{line}: sdk \"{name}\": {problem}")]
    Entry {
        origin: String,
        line: usize,
        name: String,
        problem: Box<EntryProblem>,
    },
}

/// What is wrong with one `[[sdk]]` entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryProblem {
    #[error("unknown category \"{category}\" (use one of: {})", CATEGORIES.join(", "))]
    UnknownCategory { category: String },
    #[error("empty domains; an entry needs at least one domain (or a path_anywhere pattern)")]
    EmptyDomains,
    #[error("domain \"{domain}\" {reason}")]
    BadDomain {
        domain: String,
        reason: &'static str,
    },
    #[error("path \"{path}\" {reason}")]
    BadPath { path: String, reason: &'static str },
    /// Empty name or vendor, no or repeated category, malformed region.
    #[error("{0}")]
    Invalid(String),
    #[error("duplicate name, already used at {first_at} (names compare ignoring case)")]
    DuplicateName { first_at: String },
    /// Two entries claim one domain (and path), or one `path_anywhere`
    /// pattern, so a request could not tell them apart.
    #[error(
        "{claim} is already claimed by \"{other}\" ({other_at}); give one of them `paths` that tell them apart, or replace that entry by name"
    )]
    Clash {
        claim: String,
        other: String,
        other_at: String,
    },
}

impl CatalogueError {
    fn entry(origin: &str, line: usize, name: &str, problem: EntryProblem) -> CatalogueError {
        CatalogueError::Entry {
            origin: origin.to_string(),
            line,
            name: name.to_string(),
            problem: Box::new(problem),
        }
    }
}

/// The SDK catalogue, indexed for per-flow lookup.
#[derive(Debug, Clone, Default)]
pub struct SdkCatalogue {
    sdks: Vec<Sdk>,
    /// Compiled `paths` of each entry, by entry index.
    paths: Vec<Vec<PathPattern>>,
    /// Domain suffix to the entries that claim it.
    by_domain: HashMap<String, Vec<usize>>,
    /// `path_anywhere` patterns, most specific first.
    anywhere: Vec<(PathPattern, usize)>,
    /// Lowercased name to entry.
    by_name: HashMap<String, usize>,
    /// Lowercased vendor to its first entry.
    by_vendor: HashMap<String, usize>,
}

impl SdkCatalogue {
    /// The built-in catalogue (`detectors/sdks.toml`, compiled in). A test
    /// proves it loads; should it ever not, the error is logged and the
    /// catalogue is empty rather than the process stopping.
    pub fn embedded() -> SdkCatalogue {
        match SdkCatalogue::from_toml(EMBEDDED_TEXT, EMBEDDED_ORIGIN) {
            Ok(catalogue) => catalogue,
            Err(err) => {
                tracing::error!("built-in SDK catalogue rejected: {err}");
                SdkCatalogue::default()
            }
        }
    }

    /// The built-in entries merged with the `[[sdk]]` entries of every
    /// `*.toml` file directly in `dirs` (files in name order). Files with no
    /// `sdk` key are skipped, since identifier rules live in the same places;
    /// an unreadable directory or a file that is not TOML is an error. A user
    /// entry named like a built-in one (ignoring case) replaces it in place;
    /// others are appended; two user entries with one name are an error.
    pub fn load(dirs: &[PathBuf]) -> Result<SdkCatalogue, CatalogueError> {
        let mut sdks = parse_entries(EMBEDDED_TEXT, EMBEDDED_ORIGIN)?;
        let embedded_len = sdks.len();
        let mut user_names: HashMap<String, String> = HashMap::new();
        for dir in dirs {
            for file in toml_files(dir)? {
                let text = fs::read_to_string(&file).map_err(|source| CatalogueError::Read {
                    path: file.clone(),
                    source,
                })?;
                for entry in parse_entries(&text, &file.display().to_string())? {
                    let key = entry.name.to_lowercase();
                    if let Some(first_at) = user_names.get(&key).cloned() {
                        return Err(entry.error(EntryProblem::DuplicateName { first_at }));
                    }
                    user_names.insert(key.clone(), entry.at());
                    let embedded = sdks[..embedded_len]
                        .iter()
                        .position(|sdk| sdk.name.to_lowercase() == key);
                    match embedded {
                        Some(index) => sdks[index] = entry,
                        None => sdks.push(entry),
                    }
                }
            }
        }
        SdkCatalogue::build(sdks)
    }

    /// The catalogue defined by `text` alone (no embedded entries). `origin`
    /// names the text in error messages. Text without `[[sdk]]` entries gives
    /// an empty catalogue; other top-level keys are ignored.
    pub fn from_toml(text: &str, origin: &str) -> Result<SdkCatalogue, CatalogueError> {
        SdkCatalogue::build(parse_entries(text, origin)?)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.sdks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sdks.is_empty()
    }

    /// The entry a request to `host` for `path_and_query` went to, if any.
    /// The longest claimed domain suffix of the host decides: `mi.gdt.qq.com`
    /// is GDT, while `qq.com` and `www.qq.com` are nobody (no entry claims
    /// `qq.com`). Suffixes are cut at dots only (`notumeng.com` is not under
    /// `umeng.com`); ASCII case, a port and a trailing dot are ignored; an IP
    /// host (v4, v6 bracketed or bare) never matches a domain.
    ///
    /// At one suffix, an entry whose `paths` match beats one without `paths`,
    /// and a longer matching path beats a shorter; if only path-restricted
    /// entries claim the suffix and none fits, shorter suffixes are tried.
    /// Only when no domain matched are `path_anywhere` patterns tried, on any
    /// host (IPs too), most specific first. Every path pattern is a *prefix*
    /// of `path_and_query` (never a substring), compared case-sensitively; a
    /// `*` segment stands for one non-empty path segment.
    pub fn lookup(&self, host: &str, path_and_query: &str) -> Option<&Sdk> {
        if let Some(host) = normalize_host(host) {
            // Longest first: the host itself, then each parent at a dot.
            let suffixes =
                std::iter::successors(Some(&*host), |s| s.split_once('.').map(|(_, rest)| rest));
            let mut claimed = suffixes.filter_map(|suffix| self.by_domain.get(suffix));
            if let Some(index) = claimed.find_map(|ids| self.pick(ids, path_and_query)) {
                return self.sdks.get(index);
            }
        }
        self.anywhere
            .iter()
            .find(|(pattern, _)| pattern.matches(path_and_query))
            .and_then(|(_, index)| self.sdks.get(*index))
    }

    /// Case-insensitive lookup by name or vendor, for `--declared-sdks` lists.
    ///
    /// Surrounding whitespace is ignored. An exact name match wins; a vendor
    /// match returns that vendor's first entry in catalogue order.
    pub fn find_by_name(&self, name: &str) -> Option<&Sdk> {
        let key = name.trim().to_lowercase();
        self.by_name
            .get(&key)
            .or_else(|| self.by_vendor.get(&key))
            .and_then(|&index| self.sdks.get(index))
    }

    /// All entries, embedded ones first, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Sdk> {
        self.sdks.iter()
    }

    /// Among the entries claiming one suffix, the one whose paths fit
    /// best: no `paths` scores 0, a matching prefix scores by its length.
    /// On a tie the earlier entry wins.
    fn pick(&self, ids: &[usize], path: &str) -> Option<usize> {
        let score = |index: usize| match self.paths.get(index) {
            Some(patterns) if !patterns.is_empty() => {
                let matching = patterns.iter().filter(|p| p.matches(path));
                matching.map(|p| p.specificity + 1).max()
            }
            _ => Some(0),
        };
        let scored = ids.iter().filter_map(|&index| Some((score(index)?, index)));
        scored
            .min_by_key(|&(score, index)| (Reverse(score), index))
            .map(|(_, index)| index)
    }

    /// Checks names and claims across entries and builds the indexes.
    fn build(sdks: Vec<Sdk>) -> Result<SdkCatalogue, CatalogueError> {
        let mut catalogue = SdkCatalogue::default();
        // (domain, path): "" for a domain without `paths`, and for the
        // domain of a `path_anywhere` pattern (neither is ever valid data).
        let mut claims: HashMap<(&str, &str), usize> = HashMap::new();
        for (index, sdk) in sdks.iter().enumerate() {
            if let Some(&first) = catalogue.by_name.get(&sdk.name.to_lowercase()) {
                let first_at = sdks[first].at();
                return Err(sdk.error(EntryProblem::DuplicateName { first_at }));
            }
            catalogue.by_name.insert(sdk.name.to_lowercase(), index);
            let vendor = sdk.vendor.to_lowercase();
            catalogue.by_vendor.entry(vendor).or_insert(index);
            let paths: Vec<&str> = if sdk.paths.is_empty() {
                vec![""]
            } else {
                sdk.paths.iter().map(String::as_str).collect()
            };
            let domains = sdk.domains.iter().map(String::as_str);
            let on_domains = domains.flat_map(|d| paths.iter().map(move |p| (d, *p)));
            let anywhere = sdk.path_anywhere.iter().map(|p| ("", p.as_str()));
            for (domain, path) in on_domains.chain(anywhere) {
                if let Some(&other) = claims.get(&(domain, path)) {
                    let claim = match (domain, path) {
                        ("", _) => format!("path_anywhere pattern \"{path}\""),
                        (_, "") => format!("domain \"{domain}\""),
                        _ => format!("domain \"{domain}\" with path \"{path}\""),
                    };
                    let (other_at, other) = (sdks[other].at(), sdks[other].name.clone());
                    return Err(sdk.error(EntryProblem::Clash {
                        claim,
                        other,
                        other_at,
                    }));
                }
                claims.insert((domain, path), index);
            }
            for domain in &sdk.domains {
                let owners = catalogue.by_domain.entry(domain.clone()).or_default();
                owners.push(index);
            }
            for pattern in &sdk.path_anywhere {
                catalogue.anywhere.push((PathPattern::new(pattern), index));
            }
            let compiled = sdk.paths.iter().map(|p| PathPattern::new(p)).collect();
            catalogue.paths.push(compiled);
        }
        // Stable: equally specific patterns keep catalogue order.
        let anywhere = &mut catalogue.anywhere;
        anywhere.sort_by_key(|(pattern, _)| Reverse(pattern.specificity));
        catalogue.sdks = sdks;
        Ok(catalogue)
    }
}

/// A path prefix in which a `*` segment stands for one non-empty segment.
#[derive(Debug, Clone)]
struct PathPattern {
    /// The pattern split at each `*`: one segment lies between neighbours.
    literals: Vec<String>,
    /// Literal characters: a longer literal is a more specific pattern.
    specificity: usize,
}

impl PathPattern {
    /// `pattern` must have passed [`path_problem`].
    fn new(pattern: &str) -> PathPattern {
        let literals: Vec<String> = pattern.split('*').map(str::to_string).collect();
        let specificity = literals.iter().map(String::len).sum();
        PathPattern {
            literals,
            specificity,
        }
    }

    /// Whether `path_and_query` starts with this pattern.
    fn matches(&self, path_and_query: &str) -> bool {
        let mut rest = path_and_query;
        for (i, literal) in self.literals.iter().enumerate() {
            if i > 0 {
                let segment = rest.find(['/', '?']).unwrap_or(rest.len());
                if segment == 0 {
                    return false;
                }
                rest = &rest[segment..];
            }
            match rest.strip_prefix(literal.as_str()) {
                Some(after) => rest = after,
                None => return false,
            }
        }
        true
    }
}

/// The host as a lowercase name without port or trailing dot, or `None`
/// for an IP address or an empty host.
fn normalize_host(host: &str) -> Option<Cow<'_, str>> {
    let host = host.trim();
    if host.starts_with('[') {
        return None;
    }
    let host = match host.split_once(':') {
        // A second colon means a bare IPv6 address.
        Some((_, port)) if port.contains(':') => return None,
        Some((name, _)) => name,
        None => host,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.parse::<Ipv4Addr>().is_ok() {
        return None;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

#[derive(Deserialize)]
struct RawFile {
    sdk: Option<Vec<Spanned<RawSdk>>>,
}

/// Missing fields default to empty, and [`validate`] names what is absent.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawSdk {
    name: String,
    vendor: String,
    category: Vec<String>,
    region: Option<String>,
    domains: Vec<String>,
    paths: Vec<String>,
    path_anywhere: Vec<String>,
}

/// The `[[sdk]]` entries of one file, each validated on its own.
fn parse_entries(text: &str, origin: &str) -> Result<Vec<Sdk>, CatalogueError> {
    let file: RawFile = toml::from_str(text).map_err(|err| CatalogueError::Toml {
        origin: origin.to_string(),
        // The parser locates nearly every error; the rare one it does not is
        // reported against the first line.
        line: err.span().map_or(1, |span| line_of(text, span.start)),
        message: err.message().trim().to_string(),
    })?;
    file.sdk
        .unwrap_or_default()
        .into_iter()
        .map(|raw| {
            let line = line_of(text, raw.span().start);
            validate(raw.into_inner(), origin, line)
        })
        .collect()
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.bytes().take(offset).filter(|&b| b == b'\n').count() + 1
}

fn validate(raw: RawSdk, origin: &str, line: usize) -> Result<Sdk, CatalogueError> {
    let name = raw.name.trim().to_string();
    let fail = |problem| Err(CatalogueError::entry(origin, line, &name, problem));
    let invalid = |text: String| fail(EntryProblem::Invalid(text));
    let vendor = raw.vendor.trim().to_string();
    if name.is_empty() || vendor.is_empty() {
        let field = if name.is_empty() { "name" } else { "vendor" };
        return invalid(format!("the {field} is missing or empty"));
    }
    if raw.category.is_empty() {
        return invalid("no category; list at least one in `category`".into());
    }
    for (i, category) in raw.category.iter().enumerate() {
        if !CATEGORIES.contains(&category.as_str()) {
            let category = category.clone();
            return fail(EntryProblem::UnknownCategory { category });
        }
        if raw.category[..i].contains(category) {
            return invalid(format!("category \"{category}\" is listed twice"));
        }
    }
    if let Some(region) = &raw.region {
        let code = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        if region.is_empty() || !region.bytes().all(code) {
            return invalid(format!(
                "region \"{region}\" must be a lowercase code such as \"cn\""
            ));
        }
    }
    if raw.domains.is_empty() && raw.path_anywhere.is_empty() {
        return fail(EntryProblem::EmptyDomains);
    }
    if !raw.paths.is_empty() && raw.domains.is_empty() {
        return invalid("`paths` narrow `domains`, but there are no domains".into());
    }
    for (i, domain) in raw.domains.iter().enumerate() {
        let twice = || {
            raw.domains[..i]
                .contains(domain)
                .then_some("is listed twice")
        };
        if let Some(reason) = domain_problem(domain).or_else(twice) {
            let domain = domain.clone();
            return fail(EntryProblem::BadDomain { domain, reason });
        }
    }
    for list in [&raw.paths, &raw.path_anywhere] {
        for (i, path) in list.iter().enumerate() {
            let twice = || list[..i].contains(path).then_some("is listed twice");
            if let Some(reason) = path_problem(path).or_else(twice) {
                let path = path.clone();
                return fail(EntryProblem::BadPath { path, reason });
            }
        }
    }
    Ok(Sdk {
        name,
        vendor,
        categories: raw.category,
        region: raw.region,
        domains: raw.domains,
        paths: raw.paths,
        path_anywhere: raw.path_anywhere,
        origin: origin.to_string(),
        line,
    })
}

/// What is wrong with a `domains` value, if anything.
fn domain_problem(d: &str) -> Option<&'static str> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b);
    let upper = d.bytes().any(|b| b.is_ascii_uppercase());
    let reason = match d {
        _ if d.contains("://") => "has a scheme; write the bare host name",
        _ if d.contains('/') => "has a path; put path prefixes in `paths`",
        _ if d.contains(':') => "has a port; ports are ignored when matching",
        _ if d.contains('*') => "has a wildcard; a domain covers its subdomains already",
        _ if upper => "has uppercase letters; write it in lowercase",
        _ if d.split('.').any(str::is_empty) => {
            "has an empty label (leading, trailing or double dot)"
        }
        _ if !d.bytes().all(allowed) => "may only use a-z, 0-9, '-', '_' and '.' (or punycode)",
        _ if d.parse::<Ipv4Addr>().is_ok() => "is an IP address; IP hosts never match a domain",
        _ if !d.contains('.') => "is a single label; it would claim a whole top-level domain",
        _ => return None,
    };
    Some(reason)
}

/// What is wrong with a `paths` or `path_anywhere` value, if anything.
fn path_problem(p: &str) -> Option<&'static str> {
    let after = |i: usize| p.as_bytes().get(i + 1).copied();
    let whole = |(i, _)| p[..i].ends_with('/') && matches!(after(i), None | Some(b'/' | b'?'));
    let reason = match p {
        _ if !p.starts_with('/') => "must start with '/'",
        _ if p.chars().any(|c| c.is_whitespace() || c.is_control()) => "contains whitespace",
        _ if p.contains('#') => "contains '#'; fragments never reach the server",
        _ if !p.match_indices('*').all(whole) => {
            "uses '*' inside a segment; '*' must be a whole one"
        }
        _ => return None,
    };
    Some(reason)
}

/// `*.toml` files directly in `dir`, sorted by name.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, CatalogueError> {
    let read_error = |source| CatalogueError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
#[path = "sdk_tests.rs"]
mod tests;
