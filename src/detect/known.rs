//! Known-value search: the test device's own identifiers, in every form
//! [`expand`] produces, found in a message fed in chunks of any size.
//!
//! A [`KnownValueStream`] holds back the last bytes of each chunk (fewer
//! than the longest form) and searches them joined to the next chunk, so
//! a value split across chunks (even 1-byte chunks) is found and the
//! message is never buffered; a sampled 4-gram filter lets the search
//! skip most bytes (see `known_search.rs`). Matches are overlapping:
//! every form that occurs is reported, including forms inside other forms
//! (the national phone number inside `+86 138 0013 8000` is reported when
//! its boundaries allow it); consumers pick the strongest per identifier
//! with [`Encoding::strength`].
//!
//! Word boundaries: a digit-shaped form (IMEI, phone, decimal degrees) must
//! not touch a digit on either side, a hex-shaped form (hex, hex digests,
//! ANDROID_ID, MAC, UUID) must not touch a hex digit, and a package name
//! must not touch a letter, digit, `_` or `.`; so the IMEI inside a 30-digit
//! number, or an MD5 inside a longer hex run, is not a match. Decimal
//! degrees are checked on the left only, since they match longer decimals
//! by prefix. Base64 forms are exempt: they are found inside longer base64
//! runs by design.

use std::fmt;

use super::expand::{Encoding, Form, expand};
use super::profile::DeviceProfile;
use super::spares::{self, Spares};
use search::{Cursor, Hit, Search};

#[path = "known_search.rs"]
mod search;

/// Distinct installed-app package names one message must contain before
/// it is reported as an app list (fewer when the profile lists fewer):
/// a single package name is not a list, because the app under test and
/// the SDKs it talks to name packages all the time.
pub const MIN_APPS: usize = 3;

/// One report: an identifier found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMatch {
    /// Profile key (`"imei"`, `"custom:account"`), `"location"` or
    /// `"installed_apps"`.
    pub identifier: String,
    pub encoding: Encoding,
    /// Byte offsets in the whole message; `end` is exclusive. For
    /// location and installed apps: the part that completed the set.
    pub start: u64,
    pub end: u64,
}

/// Character classes for word boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Digit,
    Hex,
    Package,
}

impl Class {
    fn contains(self, b: u8) -> bool {
        match self {
            Class::Digit => b.is_ascii_digit(),
            Class::Hex => b.is_ascii_hexdigit(),
            Class::Package => b.is_ascii_alphanumeric() || b == b'_' || b == b'.',
        }
    }
}

/// What a pattern's match means.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Index into `KnownValueMatcher::identifiers`.
    Identifier(usize),
    Latitude,
    Longitude,
    /// Index of the package among the counted installed apps.
    App(usize),
}

#[derive(Debug, Clone)]
struct Pattern {
    len: u64,
    target: Target,
    encoding: Encoding,
    left: Option<Class>,
    right: Option<Class>,
}

/// The searchable form of a device profile; build once, share across
/// flows (it is immutable), start one [`KnownValueStream`] per message.
/// `Debug` shows sizes only: the automaton's transitions spell the values.
pub struct KnownValueMatcher {
    /// `None` when there is nothing to search.
    search: Option<Search>,
    /// Indexed by pattern ID.
    patterns: Vec<Pattern>,
    identifiers: Vec<String>,
    /// Distinct apps needed for an app-list report (0: never reported).
    apps_needed: usize,
    apps_counted: usize,
    /// The buffers of finished streams, for the next ones.
    spares: Spares<KnownParts>,
}

impl KnownValueMatcher {
    /// Builds the automaton from [`expand`]. An empty profile gives a
    /// matcher that never matches. The package of the app under test
    /// ([`DeviceProfile::app`]) does not count towards an app list.
    pub fn new(profile: &DeviceProfile) -> KnownValueMatcher {
        let mut identifiers: Vec<String> = Vec::new();
        let mut apps: Vec<Vec<u8>> = Vec::new();
        let mut patterns = Vec::new();
        let mut bytes = Vec::new();
        let own_app = profile.app().map(str::as_bytes);
        for form in expand(profile) {
            let target = match form.identifier.as_str() {
                "location:lat" => Target::Latitude,
                "location:lon" => Target::Longitude,
                "installed_apps" if Some(form.bytes.as_slice()) == own_app => continue,
                "installed_apps" => {
                    let index = apps.iter().position(|a| *a == form.bytes);
                    Target::App(index.unwrap_or_else(|| {
                        apps.push(form.bytes.clone());
                        apps.len() - 1
                    }))
                }
                id => {
                    let index = identifiers.iter().position(|i| i == id);
                    Target::Identifier(index.unwrap_or_else(|| {
                        identifiers.push(id.to_string());
                        identifiers.len() - 1
                    }))
                }
            };
            let (left, right) = boundaries(&form);
            patterns.push(Pattern {
                len: form.bytes.len() as u64,
                target,
                encoding: form.encoding,
                left,
                right,
            });
            bytes.push(form.bytes);
        }
        let search = Search::new(&bytes);
        KnownValueMatcher {
            patterns: search.as_ref().map_or_else(Vec::new, |_| patterns),
            search,
            identifiers,
            apps_needed: MIN_APPS.min(apps.len()),
            apps_counted: apps.len(),
            spares: Spares::new(),
        }
    }

    /// True when the matcher can never report anything.
    pub fn is_empty(&self) -> bool {
        self.search.is_none()
    }

    /// Number of byte strings searched.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// A search over one message (URL, a header, a body, a WebSocket
    /// message).
    pub fn stream(&self) -> KnownValueStream<'_> {
        let parts = self.spares.take();
        let mut stream = KnownValueStream {
            matcher: self,
            cursor: parts.cursor,
            pending: parts.pending,
            hits: parts.hits,
            latitude: None,
            longitude: None,
            location_done: false,
            apps_seen: parts.apps_seen,
            apps_count: 0,
        };
        stream.restart();
        stream
    }
}

/// A finished stream's buffers, for the next stream of its matcher.
#[derive(Default)]
struct KnownParts {
    cursor: Cursor,
    pending: Vec<Hit>,
    hits: Vec<Hit>,
    apps_seen: Vec<bool>,
}

impl KnownValueStream<'_> {
    /// Back at the start of a message, keeping the buffers.
    fn restart(&mut self) {
        self.cursor.restart();
        self.pending.clear();
        self.hits.clear();
        (self.latitude, self.longitude, self.location_done) = (None, None, false);
        self.apps_seen.clear();
        self.apps_seen.resize(self.matcher.apps_counted, false);
        self.apps_count = 0;
    }
}

impl Drop for KnownValueStream<'_> {
    fn drop(&mut self) {
        self.matcher.spares.give_back(KnownParts {
            cursor: std::mem::take(&mut self.cursor),
            pending: spares::taken_emptied(&mut self.pending),
            hits: spares::taken_emptied(&mut self.hits),
            apps_seen: std::mem::take(&mut self.apps_seen),
        });
    }
}

impl fmt::Debug for KnownValueMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownValueMatcher")
            .field("patterns", &self.patterns.len())
            .field("identifiers", &self.identifiers)
            .field("apps_needed", &self.apps_needed)
            .finish_non_exhaustive()
    }
}

/// Left and right word-boundary classes of a form (see the module docs).
fn boundaries(form: &Form) -> (Option<Class>, Option<Class>) {
    let bytes = &form.bytes;
    let hex_id = matches!(
        form.identifier.as_str(),
        "meid" | "android_id" | "adid" | "oaid" | "idfa" | "idfv" | "mac" | "bt_mac" | "bssid"
    );
    let hex_shaped = bytes
        .iter()
        .all(|b| b.is_ascii_hexdigit() || b":-".contains(b));
    let digit_shaped = bytes
        .iter()
        .all(|b| b.is_ascii_digit() || b" -+.".contains(b));
    let class = if form.encoding.is_base64() {
        None
    } else if form.identifier == "installed_apps" {
        Some(Class::Package)
    } else if form.encoding.is_hex() || (hex_id && hex_shaped) {
        // Hex output stays hex-bounded even when it has only digits (the
        // hex of an IMEI's ASCII): it may sit inside a hex dump.
        Some(Class::Hex)
    } else if digit_shaped {
        Some(Class::Digit)
    } else if hex_shaped {
        Some(Class::Hex)
    } else {
        None
    };
    let Some(class) = class else {
        return (None, None);
    };
    // Only an end that is itself in the class can run on into a longer
    // token (`+86...` may follow a digit).
    let left = bytes
        .first()
        .is_some_and(|b| class.contains(*b))
        .then_some(class);
    let right = bytes
        .last()
        .is_some_and(|b| class.contains(*b))
        .then_some(class);
    let right = right.filter(|_| form.encoding != Encoding::Decimal);
    (left, right)
}

/// The search over one message. Feed chunks in order, then call
/// [`KnownValueStream::finish`]. Memory is bounded by the longest form and
/// the matches pending near a chunk's end, never by the message.
#[derive(Debug)]
pub struct KnownValueStream<'m> {
    matcher: &'m KnownValueMatcher,
    cursor: Cursor,
    /// Matches whose left boundary passed, waiting until every match that
    /// may end before them is found and the byte after them is known.
    pending: Vec<Hit>,
    /// Scratch buffer for one chunk's raw hits.
    hits: Vec<Hit>,
    latitude: Option<(u64, u64)>,
    longitude: Option<(u64, u64)>,
    location_done: bool,
    apps_seen: Vec<bool>,
    apps_count: usize,
}

impl KnownValueStream<'_> {
    /// Feeds the next chunk of the message. Matches are reported with
    /// offsets relative to the whole message, in order of their end offset
    /// (then of their form), whatever the chunking: a match near the end
    /// of `chunk` is reported by a later call (or by [`Self::finish`]).
    /// Location and installed apps are reported as soon as the message
    /// has shown enough of them (see [`Self::finish`]).
    pub fn feed(&mut self, chunk: &[u8], on_match: &mut dyn FnMut(KnownMatch)) {
        let Some(search) = self.matcher.search.as_ref() else {
            return;
        };
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        let final_below = search.feed(&mut self.cursor, chunk, &mut hits);
        self.hold(&hits, chunk);
        self.release(final_below, chunk, on_match);
        self.hits = hits;
        self.cursor.advance(chunk);
    }

    /// Ends the message: reports the matches still pending (the end of a
    /// message is a boundary), then resets the stream so it can search a
    /// new message from offset 0.
    ///
    /// Location (latitude and longitude both seen) and installed apps (at
    /// least `MIN_APPS` distinct packages, or all the profile lists if
    /// fewer) are properties of the whole message, but they are reported
    /// during [`Self::feed`] as soon as the message has shown enough,
    /// once per message, with the span of the part that completed them.
    pub fn finish(&mut self, on_match: &mut dyn FnMut(KnownMatch)) {
        if let Some(search) = self.matcher.search.as_ref() {
            let mut hits = std::mem::take(&mut self.hits);
            hits.clear();
            search.finish(&mut self.cursor, &mut hits);
            self.hold(&hits, &[]);
            self.release(u64::MAX, &[], on_match);
        }
        self.restart();
    }

    /// Keeps the hits whose left boundary passes; `chunk` is the chunk
    /// being fed.
    fn hold(&mut self, hits: &[Hit], chunk: &[u8]) {
        for hit in hits {
            let Some(pattern) = self.matcher.patterns.get(hit.pattern) else {
                continue;
            };
            let before = hit.end.checked_sub(pattern.len + 1);
            let byte = before.and_then(|at| self.cursor.byte(at, chunk));
            if !pattern
                .left
                .is_some_and(|c| byte.is_some_and(|b| c.contains(b)))
            {
                self.pending.push(*hit);
            }
        }
    }

    /// Reports, in order, the pending matches ending before `below` whose
    /// right boundary passes.
    fn release(&mut self, below: u64, chunk: &[u8], on_match: &mut dyn FnMut(KnownMatch)) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by_key(|h| (h.end, h.pattern));
        let ready = pending.partition_point(|h| h.end < below);
        for hit in &pending[..ready] {
            let right = self.matcher.patterns.get(hit.pattern).and_then(|p| p.right);
            let after = self.cursor.byte(hit.end, chunk);
            if !right.is_some_and(|c| after.is_some_and(|b| c.contains(b))) {
                self.confirm(*hit, on_match);
            }
        }
        pending.drain(..ready);
        self.pending = pending;
    }

    /// Reports a match whose boundaries passed.
    fn confirm(&mut self, hit: Hit, on_match: &mut dyn FnMut(KnownMatch)) {
        let Some(pattern) = self.matcher.patterns.get(hit.pattern) else {
            return;
        };
        let span = (hit.end.saturating_sub(pattern.len), hit.end);
        let report = |identifier: &str, encoding| KnownMatch {
            identifier: identifier.to_string(),
            encoding,
            start: span.0,
            end: span.1,
        };
        match pattern.target {
            Target::Identifier(i) => {
                if let Some(id) = self.matcher.identifiers.get(i) {
                    on_match(report(id, pattern.encoding));
                }
            }
            Target::Latitude | Target::Longitude => {
                if matches!(pattern.target, Target::Latitude) {
                    self.latitude = Some(span);
                } else {
                    self.longitude = Some(span);
                }
                if !self.location_done && self.latitude.is_some() && self.longitude.is_some() {
                    self.location_done = true;
                    on_match(report("location", pattern.encoding));
                }
            }
            Target::App(i) => {
                if let Some(seen) = self.apps_seen.get_mut(i)
                    && !*seen
                {
                    *seen = true;
                    self.apps_count += 1;
                    if self.apps_count == self.matcher.apps_needed {
                        on_match(report("installed_apps", pattern.encoding));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "known_tests.rs"]
mod tests;
