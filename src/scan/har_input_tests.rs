use super::*;
use proptest::prelude::*;
use std::io::Write;

const MINIMAL: &str = r#"{"log": {"version": "1.2", "creator": {"name": "t", "version": "1"},
  "entries": [{"startedDateTime": "2024-05-01T10:00:00Z",
               "request": {"method": "GET", "url": "http://a.test/"}}]}}"#;

fn read(text: &str) -> Result<HarLog, HarError> {
    read_har_bytes(text.as_bytes(), "cap.har")
}

#[test]
fn a_minimal_har_reads_with_its_creator() {
    let log = read(MINIMAL).unwrap();
    assert_eq!(log.entries.len(), 1);
    assert_eq!(log.creator.as_deref(), Some("t 1"));
    assert!(matches!(log.pages, Field::Missing));
}

#[test]
fn json_syntax_errors_name_the_file_line_and_column() {
    let err = read("{\n  \"log\": {\n    \"entries\": [,]\n  }\n}").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HarError::Syntax { line: 3, .. }), "{err:?}");
    assert!(text.starts_with("cap.har:3:"), "{text}");
    assert!(text.contains("not valid JSON"), "{text}");
    assert!(!text.contains(" at line "), "position said twice: {text}");
}

#[test]
fn empty_and_cut_off_files_say_so() {
    for text in ["", "   ", &MINIMAL[..MINIMAL.len() / 2]] {
        let err = read(text).unwrap_err();
        assert!(
            matches!(err, HarError::Truncated { .. }),
            "{text:?}: {err:?}"
        );
        assert!(err.to_string().contains("ends early"), "{err}");
    }
}

#[test]
fn json_that_is_not_a_har_names_the_missing_member() {
    let err = read(r#"{"version": "1.2"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cap.har: not a HAR file: log: missing (a HAR file is {"log": {"entries": [...]}})"#
    );
    let err = read(r#"{"log": {"pages": []}}"#).unwrap_err();
    assert!(err.to_string().contains("log.entries: missing"), "{err}");
    let err = read(r#"{"log": null}"#).unwrap_err();
    assert!(err.to_string().contains("log: missing"), "{err}");
}

#[test]
fn wrong_types_at_the_top_name_what_was_expected_and_where() {
    let err = read(r#"{"log": "yes"}"#).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HarError::NotHar { line: 1, .. }), "{err:?}");
    assert!(text.contains("the HAR `log` object"), "{text}");
    let err = read(r#"{"log": {"entries": {"a": 1}}}"#).unwrap_err();
    assert!(err.to_string().contains("`log.entries`: an array"), "{err}");
    let err = read(r#"[1, 2]"#).unwrap_err();
    assert!(err.to_string().contains("not a HAR file"), "{err}");
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let text = format!("\u{feff}{MINIMAL}");
    assert_eq!(read(&text).unwrap().entries.len(), 1);
}

#[test]
fn gzip_and_zlib_compressed_files_are_read() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(MINIMAL.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(read_har_bytes(&gz, "x.har.gz").unwrap().entries.len(), 1);
    // mitmproxy's .zhar: zlib.compress(har, 9).
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(MINIMAL.as_bytes()).unwrap();
    let z = z.finish().unwrap();
    assert_eq!(read_har_bytes(&z, "x.zhar").unwrap().entries.len(), 1);
    // A corrupt stream is a read error, not a panic.
    assert!(read_har_bytes(&gz[..gz.len() / 2], "x.har.gz").is_err());
}

#[test]
fn odd_members_stay_readable_and_say_why() {
    let log = read(
        r#"{"log": {"entries": [
            {"startedDateTime": 5, "time": null, "request": {"url": ["x"]}},
            "not an entry",
            {"request": {"url": "u", "url": "v"}}
        ]}}"#,
    )
    .unwrap();
    let mut entries = log.entries.into_iter();
    let Some(Field::Present(first)) = entries.next() else {
        panic!("first entry")
    };
    assert!(
        matches!(first.started_date_time, Field::Invalid(ref why) if why.contains("expected a string"))
    );
    assert_eq!(first.time, Field::Null);
    let request = first.request.present().unwrap();
    assert!(matches!(request.url, Field::Invalid(_)));
    assert!(matches!(entries.next(), Some(Field::Invalid(_))));
    // A repeated member: the last one counts, as in most JSON readers.
    let Some(Field::Present(third)) = entries.next() else {
        panic!("duplicate member")
    };
    let request = third.request.present().unwrap();
    assert_eq!(request.url, Field::Present("v".to_owned()));
}

#[test]
fn scalars_are_text() {
    let log = read(r#"{"log": {"pages": [{"id": 7, "title": true}], "entries": []}}"#).unwrap();
    let Field::Present(pages) = log.pages else {
        panic!("pages")
    };
    let page = pages[0].present().unwrap();
    assert_eq!(page.id, Field::Present(Text("7".into())));
    assert_eq!(page.title, Field::Present(Text("true".into())));
}

#[test]
fn paths_render_like_javascript() {
    let root = JsonPath::root("log");
    let entries = root.key("entries");
    let entry = entries.index(3);
    let request = entry.key("request");
    let url = request.key("url");
    assert_eq!(url.to_string(), "log.entries[3].request.url");
    assert_eq!(
        url.problem("missing").to_string(),
        "log.entries[3].request.url: missing"
    );
    let field: Field<String> = Field::Missing;
    assert_eq!(field.required(&url).unwrap_err().message, "missing");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        r#"{{"log": {{"entries": [{{"request": {}1{}}}]}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(read(&deep).is_err());
}

/// Converts every entry too, so the whole input path is exercised.
fn read_and_convert(bytes: &[u8]) {
    if let Ok(log) = read_har_bytes(bytes, "fuzz.har") {
        let root = JsonPath::root("log");
        let list = root.key("entries");
        for (index, entry) in log.entries.into_iter().enumerate() {
            let _ = crate::scan::entry::start_of(&entry);
            let _ = crate::scan::entry::convert(entry, &list.index(index));
        }
        let mut warnings = Vec::new();
        let _ = crate::scan::phases::from_pages(log.pages, &mut warnings);
    }
}

const RICH: &str = include_str!("../../tests/scan/handmade.har");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_and_convert(&bytes);
    }

    #[test]
    fn truncations_never_panic(cut in 0..RICH.len()) {
        read_and_convert(&RICH.as_bytes()[..cut]);
    }

    #[test]
    fn corrupted_bytes_never_panic(
        edits in proptest::collection::vec((0..RICH.len(), any::<u8>()), 1..8)
    ) {
        let mut bytes = RICH.as_bytes().to_vec();
        for (at, byte) in edits {
            bytes[at] = byte;
        }
        read_and_convert(&bytes);
    }
}
