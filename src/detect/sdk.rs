//! Who received a flow: the catalogue of third-party SDK endpoints.
//!
//! The catalogue is data: `detectors/sdks.toml` is compiled into the binary,
//! and `[[sdk]]` entries in user rule directories add to it or replace its
//! entries by name. Each entry names one SDK product, its vendor and
//! categories, and the domains (optionally narrowed to path prefixes) it
//! sends to. [`SdkCatalogue::lookup`] runs once per flow: it costs one hash
//! probe per label of the host, never a scan over the entries.
//!
//! Mistakes in the data are errors that cite `file:line` (the line of the
//! offending `[[sdk]]` header, or of the TOML syntax error), the entry's
//! name, and what is wrong. The format is documented in `detectors/README.md`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The category vocabulary. An entry lists one or more of these; the first
/// is its primary category (the one findings report).
///
/// - `analytics`: usage and event analytics, app logs sent to a vendor
/// - `advertising`: ad serving, ad creatives, ad measurement
/// - `attribution`: install attribution and deep links
/// - `push`: push messaging and its connection scheduling
/// - `crash-reporting`: crash reports and app performance monitoring
/// - `social-login`: sign-in with a social account
/// - `social-share`: sharing to social networks
/// - `payment`: payment SDKs
/// - `maps-location`: maps and positioning
/// - `customer-support`: in-app help desks and chat
/// - `fingerprinting`: device fingerprinting, risk control, anti-fraud, bot checks
/// - `a-b-testing`: experiments and remote feature flags
/// - `login-phone-number`: one-tap login that reads the phone number from the carrier
/// - `session-replay`: screen and session recording
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

/// The `sdk` object of a finding: who received the data.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SdkInfo {
    pub name: String,
    pub vendor: String,
    /// The entry's primary (first) category.
    pub category: String,
}

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
}

/// A problem with catalogue data. Every variant but [`CatalogueError::Read`]
/// carries the origin (file path) and line it refers to.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, a value of the wrong type, a missing or unknown field.
    #[error("{origin}:{line}: {message}")]
    Toml {
        origin: String,
        line: usize,
        message: String,
    },
    #[error(
        "{origin}:{line}: sdk \"{name}\": unknown category \"{category}\" (use one of: {})",
        CATEGORIES.join(", ")
    )]
    UnknownCategory {
        origin: String,
        line: usize,
        name: String,
        category: String,
    },
    #[error(
        "{origin}:{line}: sdk \"{name}\": empty domains; an entry needs at least one domain (or a path_anywhere pattern)"
    )]
    EmptyDomains {
        origin: String,
        line: usize,
        name: String,
    },
    #[error("{origin}:{line}: sdk \"{name}\": domain \"{domain}\" {problem}")]
    BadDomain {
        origin: String,
        line: usize,
        name: String,
        domain: String,
        problem: &'static str,
    },
    #[error("{origin}:{line}: sdk \"{name}\": path \"{path}\" {problem}")]
    BadPath {
        origin: String,
        line: usize,
        name: String,
        path: String,
        problem: &'static str,
    },
    /// Empty name or vendor, no category, a malformed region.
    #[error("{origin}:{line}: sdk \"{name}\": {problem}")]
    Invalid {
        origin: String,
        line: usize,
        name: String,
        problem: String,
    },
    #[error(
        "{origin}:{line}: sdk \"{name}\": duplicate name, already defined at {first_origin}:{first_line} (names are compared ignoring case)"
    )]
    DuplicateName {
        origin: String,
        line: usize,
        name: String,
        first_origin: String,
        first_line: usize,
    },
    /// Two entries claim the same domain (or the same domain and path, or
    /// the same `path_anywhere` pattern), so a request could not tell them apart.
    #[error(
        "{origin}:{line}: sdk \"{name}\": {claim} is already claimed by \"{other}\" ({other_origin}:{other_line}); give one of them `paths` that tell them apart, or replace that entry by name"
    )]
    Clash {
        origin: String,
        line: usize,
        name: String,
        claim: String,
        other: String,
        other_origin: String,
        other_line: usize,
    },
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
    /// `*.toml` file in `dirs`. Files with no `sdk` key are skipped, since
    /// identifier rules live in the same directories. A user entry whose
    /// name matches a built-in one replaces it.
    ///
    /// Only the top level of each directory is read, files in name
    /// order, directories in the order given. A directory that cannot be
    /// read, or a file that is not valid TOML, is an error (it cannot be
    /// told apart from a broken catalogue file). Names compare ignoring
    /// case; two user entries with the same name are an error. A replaced
    /// entry keeps its place in [`SdkCatalogue::iter`]; new ones follow.
    pub fn load(dirs: &[PathBuf]) -> Result<SdkCatalogue, CatalogueError> {
        let mut sdks = parse_entries(EMBEDDED_TEXT, EMBEDDED_ORIGIN)?;
        let embedded_len = sdks.len();
        let mut user_names: HashMap<String, (String, usize)> = HashMap::new();
        for dir in dirs {
            for file in toml_files(dir)? {
                let text = fs::read_to_string(&file).map_err(|source| CatalogueError::Read {
                    path: file.clone(),
                    source,
                })?;
                for entry in parse_entries(&text, &file.display().to_string())? {
                    let key = entry.name.to_lowercase();
                    if let Some((first_origin, first_line)) = user_names.get(&key) {
                        return Err(CatalogueError::DuplicateName {
                            origin: entry.origin,
                            line: entry.line,
                            name: entry.name,
                            first_origin: first_origin.clone(),
                            first_line: *first_line,
                        });
                    }
                    user_names.insert(key.clone(), (entry.origin.clone(), entry.line));
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

    /// The entry that a request to `host` for `path_and_query` went to, if
    /// any. The longest claimed domain suffix of the host decides, so
    /// `mi.gdt.qq.com` is GDT while `qq.com` and `www.qq.com` are nobody
    /// (no entry claims `qq.com`).
    ///
    /// - `host` compares ignoring ASCII case, a trailing dot and a port
    ///   (`Host:443`). Suffixes are cut at label boundaries only
    ///   (`notumeng.com` is not under `umeng.com`). An IP address (v4, v6
    ///   bracketed or bare) never matches a domain.
    /// - At one suffix, an entry whose `paths` match beats an entry without
    ///   `paths`, and the longer matching path beats the shorter. If only
    ///   path-restricted entries claim the suffix and none matches, the walk
    ///   goes on to shorter suffixes.
    /// - `path_anywhere` patterns are prefixes: `path_and_query` must *start
    ///   with* the pattern, where a `*` segment stands for one non-empty path
    ///   segment. They apply to every host, IP hosts included, but only when
    ///   no domain entry matched; the most specific pattern wins.
    /// - Paths compare case-sensitively, as servers do.
    pub fn lookup(&self, host: &str, path_and_query: &str) -> Option<&Sdk> {
        if let Some(host) = normalize_host(host) {
            let mut suffix: &str = &host;
            loop {
                if let Some(index) = self
                    .by_domain
                    .get(suffix)
                    .and_then(|ids| self.pick(ids, path_and_query))
                {
                    return self.sdks.get(index);
                }
                match suffix.split_once('.') {
                    Some((_, rest)) => suffix = rest,
                    None => break,
                }
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

    /// Among the entries claiming one suffix, the one whose paths fit best.
    fn pick(&self, ids: &[usize], path: &str) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for &index in ids {
            let patterns = self.paths.get(index).map(Vec::as_slice).unwrap_or(&[]);
            let score = if patterns.is_empty() {
                Some(0)
            } else {
                patterns
                    .iter()
                    .filter(|pattern| pattern.matches(path))
                    .map(|pattern| pattern.specificity + 1)
                    .max()
            };
            if let Some(score) = score {
                // Strictly better only: on a tie the earlier entry stays.
                if best.is_none_or(|(top, _)| score > top) {
                    best = Some((score, index));
                }
            }
        }
        best.map(|(_, index)| index)
    }

    /// Checks names and claims across entries and builds the indexes.
    fn build(sdks: Vec<Sdk>) -> Result<SdkCatalogue, CatalogueError> {
        let mut by_name = HashMap::new();
        let mut by_vendor = HashMap::new();
        let mut claims: HashMap<(&str, Option<&str>), usize> = HashMap::new();
        let mut anywhere_claims: HashMap<&str, usize> = HashMap::new();
        for (index, sdk) in sdks.iter().enumerate() {
            if let Some(&first) = by_name.get(&sdk.name.to_lowercase()) {
                let first: &Sdk = &sdks[first];
                return Err(CatalogueError::DuplicateName {
                    origin: sdk.origin.clone(),
                    line: sdk.line,
                    name: sdk.name.clone(),
                    first_origin: first.origin.clone(),
                    first_line: first.line,
                });
            }
            by_name.insert(sdk.name.to_lowercase(), index);
            by_vendor.entry(sdk.vendor.to_lowercase()).or_insert(index);
            for domain in &sdk.domains {
                let keys: Vec<Option<&str>> = if sdk.paths.is_empty() {
                    vec![None]
                } else {
                    sdk.paths.iter().map(|path| Some(path.as_str())).collect()
                };
                for key in keys {
                    if let Some(&other) = claims.get(&(domain.as_str(), key)) {
                        let claim = match key {
                            None => format!("domain \"{domain}\""),
                            Some(path) => format!("domain \"{domain}\" with path \"{path}\""),
                        };
                        return Err(clash(sdk, claim, &sdks[other]));
                    }
                    claims.insert((domain.as_str(), key), index);
                }
            }
            for pattern in &sdk.path_anywhere {
                if let Some(&other) = anywhere_claims.get(pattern.as_str()) {
                    let claim = format!("path_anywhere pattern \"{pattern}\"");
                    return Err(clash(sdk, claim, &sdks[other]));
                }
                anywhere_claims.insert(pattern.as_str(), index);
            }
        }
        let mut by_domain: HashMap<String, Vec<usize>> = HashMap::new();
        let mut anywhere = Vec::new();
        for (index, sdk) in sdks.iter().enumerate() {
            for domain in &sdk.domains {
                by_domain.entry(domain.clone()).or_default().push(index);
            }
            for pattern in &sdk.path_anywhere {
                anywhere.push((PathPattern::new(pattern), index));
            }
        }
        // Stable: equally specific patterns keep catalogue order.
        anywhere.sort_by(|(a, _), (b, _)| b.specificity.cmp(&a.specificity));
        let paths = sdks
            .iter()
            .map(|sdk| sdk.paths.iter().map(|p| PathPattern::new(p)).collect())
            .collect();
        Ok(SdkCatalogue {
            sdks,
            paths,
            by_domain,
            anywhere,
            by_name,
            by_vendor,
        })
    }
}

fn clash(sdk: &Sdk, claim: String, other: &Sdk) -> CatalogueError {
    CatalogueError::Clash {
        origin: sdk.origin.clone(),
        line: sdk.line,
        name: sdk.name.clone(),
        claim,
        other: other.name.clone(),
        other_origin: other.origin.clone(),
        other_line: other.line,
    }
}

/// A path prefix in which a `*` segment stands for one non-empty segment.
#[derive(Debug, Clone)]
struct PathPattern {
    pieces: Vec<Piece>,
    /// Literal characters: a longer literal is a more specific pattern.
    specificity: usize,
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Segment,
}

impl PathPattern {
    /// `pattern` must have passed [`path_problem`].
    fn new(pattern: &str) -> PathPattern {
        let mut pieces = Vec::new();
        for (i, literal) in pattern.split('*').enumerate() {
            if i > 0 {
                pieces.push(Piece::Segment);
            }
            if !literal.is_empty() {
                pieces.push(Piece::Literal(literal.to_string()));
            }
        }
        let specificity = pattern.len() - pattern.matches('*').count();
        PathPattern {
            pieces,
            specificity,
        }
    }

    /// Whether `path_and_query` starts with this pattern.
    fn matches(&self, path_and_query: &str) -> bool {
        let mut rest = path_and_query;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(literal) => match rest.strip_prefix(literal.as_str()) {
                    Some(after) => rest = after,
                    None => return false,
                },
                Piece::Segment => {
                    let end = rest.find(['/', '?']).unwrap_or(rest.len());
                    if end == 0 {
                        return false;
                    }
                    rest = &rest[end..];
                }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSdk {
    name: String,
    vendor: String,
    category: Vec<String>,
    region: Option<String>,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
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
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

fn validate(raw: RawSdk, origin: &str, line: usize) -> Result<Sdk, CatalogueError> {
    let name = raw.name.trim().to_string();
    let invalid = |problem: &str| CatalogueError::Invalid {
        origin: origin.to_string(),
        line,
        name: name.clone(),
        problem: problem.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    let vendor = raw.vendor.trim().to_string();
    if vendor.is_empty() {
        return Err(invalid("the vendor is empty"));
    }
    if raw.category.is_empty() {
        return Err(invalid("no category; list at least one"));
    }
    for (i, category) in raw.category.iter().enumerate() {
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(CatalogueError::UnknownCategory {
                origin: origin.to_string(),
                line,
                name,
                category: category.clone(),
            });
        }
        if raw.category[..i].contains(category) {
            return Err(invalid(&format!("category \"{category}\" is listed twice")));
        }
    }
    if let Some(region) = &raw.region {
        let code = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        if region.is_empty() || !region.bytes().all(code) {
            return Err(invalid(&format!(
                "region \"{region}\" must be a lowercase code such as \"cn\" or \"global\""
            )));
        }
    }
    if raw.domains.is_empty() && raw.path_anywhere.is_empty() {
        return Err(CatalogueError::EmptyDomains {
            origin: origin.to_string(),
            line,
            name,
        });
    }
    for (i, domain) in raw.domains.iter().enumerate() {
        let problem = domain_problem(domain).or_else(|| {
            raw.domains[..i]
                .contains(domain)
                .then_some("is listed twice")
        });
        if let Some(problem) = problem {
            return Err(CatalogueError::BadDomain {
                origin: origin.to_string(),
                line,
                name,
                domain: domain.clone(),
                problem,
            });
        }
    }
    if !raw.paths.is_empty() && raw.domains.is_empty() {
        return Err(invalid("`paths` narrow `domains`, but there are no domains"));
    }
    for list in [&raw.paths, &raw.path_anywhere] {
        for (i, path) in list.iter().enumerate() {
            let problem = path_problem(path)
                .or_else(|| list[..i].contains(path).then_some("is listed twice"));
            if let Some(problem) = problem {
                return Err(CatalogueError::BadPath {
                    origin: origin.to_string(),
                    line,
                    name,
                    path: path.clone(),
                    problem,
                });
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
fn domain_problem(domain: &str) -> Option<&'static str> {
    if domain.contains("://") {
        return Some("has a scheme; write the bare host name");
    }
    if domain.contains('/') {
        return Some("has a path; put path prefixes in `paths`");
    }
    if domain.contains(':') {
        return Some("has a port; ports are ignored when matching");
    }
    if domain.contains('*') {
        return Some("has a wildcard; a domain already covers all its subdomains");
    }
    if domain.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some("has uppercase letters; write it in lowercase");
    }
    if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Some("has an empty label (a leading, trailing or doubled dot)");
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.');
    if !domain.bytes().all(allowed) {
        return Some("may only use a-z, 0-9, '-', '_' and '.' (write other names in punycode)");
    }
    if domain.parse::<Ipv4Addr>().is_ok() {
        return Some("is an IP address; IP hosts never match a domain");
    }
    if !domain.contains('.') {
        return Some("is a single label; it would claim a whole top-level domain");
    }
    None
}

/// What is wrong with a `paths` or `path_anywhere` value, if anything.
fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("must start with '/'");
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("contains whitespace or control characters");
    }
    if path.contains('#') {
        return Some("contains '#'; fragments never reach the server");
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'*' {
            continue;
        }
        let before_ok = i > 0 && bytes[i - 1] == b'/';
        let after_ok = matches!(bytes.get(i + 1), None | Some(b'/') | Some(b'?'));
        if !before_ok || !after_ok {
            return Some("uses '*' inside a segment; '*' must stand for a whole path segment");
        }
    }
    None
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
