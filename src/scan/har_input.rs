//! The serde model of a HAR file written by another tool, and reading it.
//!
//! HAR writers disagree on the details: Chrome adds `_initiator`,
//! `_resourceType` and `_webSocketMessages`; mitmproxy writes `null` where
//! it knows nothing and base64 for binary bodies; Charles and HTTP Toolkit
//! omit optional members; hand-edited files have anything. So below the
//! entry level every member is a [`Field`], which never fails to
//! deserialize: a missing member, a `null`, or a value of the wrong type is
//! kept as such and becomes a precise [`Problem`]
//! (`log.entries[3].request.url: missing`) only when the scan needs that
//! member (see [`super::entry`]). What a file must get right to be a HAR at
//! all — JSON syntax, a `log` object, an `entries` array — is checked while
//! reading, and those errors carry the line and column.
//!
//! Unknown members are ignored. Entries are kept as typed values (not the
//! file's text), and each one is consumed by the scan as it is replayed.

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

/// A member of a HAR object as found in the file.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Field<T> {
    /// The member is absent.
    #[default]
    Missing,
    /// The member is `null` (mitmproxy writes that for unknown values).
    Null,
    /// The member has a value this model cannot use; the text says why.
    Invalid(String),
    Present(T),
}

impl<T> Field<T> {
    /// The value, if there is a usable one.
    pub fn present(&self) -> Option<&T> {
        match self {
            Field::Present(value) => Some(value),
            _ => None,
        }
    }

    /// The value, `None` when absent or `null`; an unusable value is a
    /// problem at `path`.
    pub fn optional(self, path: &JsonPath<'_>) -> Result<Option<T>, Problem> {
        match self {
            Field::Present(value) => Ok(Some(value)),
            Field::Missing | Field::Null => Ok(None),
            Field::Invalid(why) => Err(path.problem(why)),
        }
    }

    /// The value; absent, `null` or unusable is a problem at `path`.
    pub fn required(self, path: &JsonPath<'_>) -> Result<T, Problem> {
        match self {
            Field::Present(value) => Ok(value),
            Field::Missing => Err(path.problem("missing")),
            Field::Null => Err(path.problem("missing (null)")),
            Field::Invalid(why) => Err(path.problem(why)),
        }
    }

    /// Like [`Field::optional`], but an unusable value is only noted in
    /// `warnings`: for members the scan can do without.
    pub fn lenient(self, path: &JsonPath<'_>, warnings: &mut Vec<Problem>) -> Option<T> {
        self.optional(path).unwrap_or_else(|problem| {
            warnings.push(problem);
            None
        })
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Going through a Value costs a copy of this member, but it is what
        // lets a wrong type here stay a note instead of failing the file.
        let value = Value::deserialize(deserializer)?;
        if value.is_null() {
            return Ok(Field::Null);
        }
        Ok(match T::deserialize(value) {
            Ok(value) => Field::Present(value),
            Err(err) => Field::Invalid(err.to_string()),
        })
    }
}

/// A string member that some writers emit as a number or boolean (header
/// values, page ids): any JSON scalar, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl Visitor<'_> for Scalar {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(Scalar)
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(
    default,
    expecting = "a HAR document: a JSON object with a `log` member"
)]
pub struct HarFile {
    pub log: Option<Log>,
}

/// `log`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "the HAR `log` object")]
pub struct Log {
    pub creator: Field<Creator>,
    pub pages: Field<Vec<Field<Page>>>,
    /// Not a [`Field`]: the entries are the file, so a wrong type here is
    /// an error with its position, and entries are not copied twice.
    pub entries: Option<Entries>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Creator {
    pub name: Field<Text>,
    pub version: Field<Text>,
}

/// `log.pages[i]`. leakscope's own HAR has one page per consent phase
/// period, with ids like `phase-2-consented`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Page {
    pub id: Field<Text>,
    pub title: Field<Text>,
    pub started_date_time: Field<String>,
}

/// `log.entries`: each entry is read on its own, so one odd entry does not
/// make the others unreadable.
#[derive(Debug, Default)]
pub struct Entries(pub Vec<Field<Entry>>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`log.entries`: an array of HAR entries")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entries, A::Error> {
                // No size hint: a hostile length must not reserve memory.
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_seq(List)
    }
}

/// `log.entries[i]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Entry {
    pub pageref: Field<Text>,
    pub started_date_time: Field<String>,
    /// Whole duration in milliseconds.
    pub time: Field<f64>,
    pub request: Field<Request>,
    pub response: Field<Response>,
    pub timings: Field<Timings>,
    /// Chrome: `websocket`, `fetch`, `xhr`, `document`...
    #[serde(rename = "_resourceType")]
    pub resource_type: Field<Text>,
    #[serde(rename = "_webSocketMessages")]
    pub web_socket_messages: Field<Vec<Field<WsMessage>>>,
    /// Present in HARs leakscope wrote itself.
    #[serde(rename = "_leakscope")]
    pub leakscope: Field<LeakscopeExtra>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Request {
    pub method: Field<Text>,
    pub url: Field<String>,
    pub http_version: Field<Text>,
    pub headers: Field<Vec<Field<NameValue>>>,
    pub post_data: Field<PostData>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NameValue {
    pub name: Field<Text>,
    pub value: Field<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PostData {
    pub mime_type: Field<Text>,
    pub text: Field<String>,
    /// Not in HAR 1.2 for `postData`, but some writers mark binary request
    /// bodies this way (as `content.encoding` does for responses).
    pub encoding: Field<Text>,
    /// leakscope's own mark for a base64 request body.
    #[serde(rename = "_encoding")]
    pub leakscope_encoding: Field<Text>,
    /// Form fields, for writers that give them instead of `text`.
    pub params: Field<Vec<Field<NameValue>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Response {
    pub status: Field<f64>,
    pub http_version: Field<Text>,
    pub headers: Field<Vec<Field<NameValue>>>,
    pub content: Field<Content>,
    /// Chrome and mitmproxy: why there was no response (`net::ERR_...`).
    #[serde(rename = "_error")]
    pub error: Field<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Content {
    pub size: Field<f64>,
    pub text: Field<String>,
    pub encoding: Field<Text>,
    #[serde(rename = "_encoding")]
    pub leakscope_encoding: Field<Text>,
}

/// Milliseconds per phase; `-1` (or absent) when not applicable.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Timings {
    pub blocked: Field<f64>,
    pub dns: Field<f64>,
    pub connect: Field<f64>,
    pub ssl: Field<f64>,
    pub send: Field<f64>,
    pub wait: Field<f64>,
    pub receive: Field<f64>,
}

/// One `_webSocketMessages` item, Chrome's format.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WsMessage {
    /// `send` or `receive`.
    #[serde(rename = "type")]
    pub kind: Field<Text>,
    /// Seconds: since the Unix epoch (Chrome DevTools, mitmproxy), or on a
    /// monotonic clock (chrome-har-capturer).
    pub time: Field<f64>,
    /// 1 text, 2 binary (base64 data), 8 close, 9 ping, 10 pong.
    pub opcode: Field<f64>,
    pub data: Field<String>,
    #[serde(rename = "_encoding")]
    pub leakscope_encoding: Field<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LeakscopeExtra {
    /// The client's address, `ip:port`.
    pub client: Field<Text>,
}

/// Something wrong at a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON path, e.g. `log.entries[3].request.url`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A JSON path built on the stack and only rendered when there is a
/// problem to report, so well-formed entries cost no string building.
#[derive(Clone, Copy)]
pub struct JsonPath<'a> {
    parent: Option<&'a JsonPath<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> JsonPath<'a> {
    pub fn root(name: &'a str) -> JsonPath<'a> {
        JsonPath {
            parent: None,
            step: Step::Key(name),
        }
    }

    pub fn key(&'a self, key: &'a str) -> JsonPath<'a> {
        JsonPath {
            parent: Some(self),
            step: Step::Key(key),
        }
    }

    pub fn index(&'a self, index: usize) -> JsonPath<'a> {
        JsonPath {
            parent: Some(self),
            step: Step::Index(index),
        }
    }

    pub fn problem(&self, message: impl Into<String>) -> Problem {
        Problem {
            path: self.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match (self.step, self.parent.is_some()) {
            (Step::Key(key), true) => write!(f, ".{key}"),
            (Step::Key(key), false) => f.write_str(key),
            (Step::Index(index), _) => write!(f, "[{index}]"),
        }
    }
}

/// Why a file could not be read as a HAR. Every message starts with the
/// file name; positions are `file:line:column`.
#[derive(Debug, thiserror::Error)]
pub enum HarError {
    #[error("{file}: {source}")]
    Open { file: String, source: io::Error },
    #[error("{file}: reading failed: {source}")]
    Read { file: String, source: io::Error },
    #[error("{file}:{line}:{column}: not valid JSON: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}:{line}:{column}: the JSON ends early: the file is empty or cut off")]
    Truncated {
        file: String,
        line: usize,
        column: usize,
    },
    #[error("{file}:{line}:{column}: not a HAR file: {message}")]
    NotHar {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{file}: not a HAR file: {path}: missing (a HAR file is {{\"log\": {{\"entries\": [...]}}}})"
    )]
    Missing { file: String, path: &'static str },
}

/// The parts of a HAR file the scan uses.
#[derive(Debug)]
pub struct HarLog {
    pub creator: Option<String>,
    pub pages: Field<Vec<Field<Page>>>,
    pub entries: Vec<Field<Entry>>,
}

/// Reads and checks a HAR file (plain, or compressed with gzip or zlib as
/// mitmproxy's `.zhar` is).
pub fn read_har_file(path: &Path) -> Result<HarLog, HarError> {
    let file_name = path.display().to_string();
    let file = File::open(path).map_err(|source| HarError::Open {
        file: file_name.clone(),
        source,
    })?;
    read_har(BufReader::with_capacity(256 * 1024, file), &file_name)
}

/// Reads a HAR from `reader`; `file` names it in errors.
pub fn read_har(mut reader: impl BufRead, file: &str) -> Result<HarLog, HarError> {
    let read_error = |source| HarError::Read {
        file: file.to_owned(),
        source,
    };
    let head = reader.fill_buf().map_err(read_error)?;
    let parsed = match head {
        [0x1f, 0x8b, ..] => parse(
            BufReader::new(flate2::bufread::GzDecoder::new(reader)),
            file,
        ),
        // A zlib header (RFC 1950: deflate method, header checksum); JSON
        // cannot start with these bytes, so nothing valid is misread.
        [cmf, flg, ..] if cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0 => {
            parse(
                BufReader::new(flate2::bufread::ZlibDecoder::new(reader)),
                file,
            )
        }
        _ => parse(reader, file),
    };
    let har = parsed?;
    let log = har.log.ok_or_else(|| HarError::Missing {
        file: file.to_owned(),
        path: "log",
    })?;
    let entries = log.entries.ok_or_else(|| HarError::Missing {
        file: file.to_owned(),
        path: "log.entries",
    })?;
    let creator = log.creator.present().map(|creator| {
        let name = creator.name.present().map_or("?", |t| t.0.as_str());
        match creator.version.present() {
            Some(version) => format!("{name} {}", version.0),
            None => name.to_owned(),
        }
    });
    Ok(HarLog {
        creator,
        pages: log.pages,
        entries: entries.0,
    })
}

fn parse(mut reader: impl BufRead, file: &str) -> Result<HarFile, HarError> {
    // Windows tools write a UTF-8 byte order mark, which JSON forbids.
    let head = reader.fill_buf().map_err(|source| HarError::Read {
        file: file.to_owned(),
        source,
    })?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    serde_json::from_reader(reader).map_err(|err| json_error(err, file))
}

fn json_error(err: serde_json::Error, file: &str) -> HarError {
    let (line, column) = (err.line(), err.column());
    // serde_json appends " at line L column C"; the position goes in front.
    let text = err.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    let file = file.to_owned();
    match err.classify() {
        serde_json::error::Category::Io => HarError::Read {
            file,
            source: io::Error::other(message),
        },
        serde_json::error::Category::Eof => HarError::Truncated { file, line, column },
        serde_json::error::Category::Syntax => HarError::Syntax {
            file,
            line,
            column,
            message,
        },
        serde_json::error::Category::Data => HarError::NotHar {
            file,
            line,
            column,
            message,
        },
    }
}

/// Reads a HAR held in memory.
pub fn read_har_bytes(bytes: &[u8], file: &str) -> Result<HarLog, HarError> {
    read_har(bytes, file)
}

#[cfg(test)]
#[path = "har_input_tests.rs"]
mod tests;
