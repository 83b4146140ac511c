use super::*;
use crate::scan::har_input::read_har_bytes;
use time::format_description::well_known::Rfc3339;

fn at(time: &str) -> OffsetDateTime {
    OffsetDateTime::parse(time, &Rfc3339).unwrap()
}

fn point(phase: ConsentPhase, since: &str, page: Option<&str>) -> PhasePoint {
    PhasePoint {
        change: PhaseChange {
            phase,
            since: at(since),
        },
        page: page.map(str::to_owned),
    }
}

#[test]
fn page_names_that_name_a_phase() {
    use ConsentPhase::*;
    let cases = [
        ("phase-1-pre-consent", Some(PreConsent)),
        ("phase-12-consented", Some(Consented)),
        ("pre-consent (from 09:59:50)", Some(PreConsent)),
        ("Consented", Some(Consented)),
        ("PRE_CONSENT", Some(PreConsent)),
        ("preconsent", Some(PreConsent)),
        ("refused: user tapped no", Some(Refused)),
        ("background", Some(Background)),
        ("Background check", None),
        ("http://127.0.0.1:8080/background.html", None),
        ("page_1_84736", None),
        ("consent", None),
        ("", None),
    ];
    for (text, phase) in cases {
        assert_eq!(phase_named(text), phase, "{text:?}");
    }
}

#[test]
fn phase_pages_become_points_and_other_pages_are_ignored() {
    let har = br#"{"log": {"entries": [], "pages": [
        {"id": "page_1", "title": "http://a.test/", "startedDateTime": "2024-05-01T09:00:00Z"},
        {"id": "phase-2-consented", "title": "x", "startedDateTime": "2024-05-01T10:00:05Z"},
        {"id": "p3", "title": "refused", "startedDateTime": "late"},
        {"id": "p4", "title": "background"}
    ]}}"#;
    let log = read_har_bytes(har, "t.har").unwrap();
    let mut warnings = Vec::new();
    let points = from_pages(log.pages, &mut warnings);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].change.phase, ConsentPhase::Consented);
    assert_eq!(points[0].page.as_deref(), Some("phase-2-consented"));
    let warnings: Vec<_> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "log.pages[2].startedDateTime: not an RFC 3339 date and time; phase page ignored",
            "log.pages[3].startedDateTime: missing",
        ]
    );
}

#[test]
fn flag_times_in_rfc3339_or_on_the_capture_date() {
    let reference = Some(at("2024-05-01T09:58:00.250+08:00"));
    let parse = |text| parse_flag_time("--consent-at", text, reference);
    assert_eq!(
        parse("2024-05-01T02:00:05Z"),
        Ok(at("2024-05-01T02:00:05Z"))
    );
    assert_eq!(parse("10:00:05"), Ok(at("2024-05-01T10:00:05+08:00")));
    assert_eq!(parse("10:00"), Ok(at("2024-05-01T10:00:00+08:00")));
    assert_eq!(parse(" 10:00:05.5 "), Ok(at("2024-05-01T10:00:05.5+08:00")));
    assert_eq!(
        parse("2024-05-01T10:00:05"),
        Ok(at("2024-05-01T10:00:05+08:00"))
    );
    for bad in [
        "25:00:00",
        "10:00:00:00",
        "soon",
        "10:00:0x",
        "1:2:3.1234567890",
    ] {
        let err = parse(bad).unwrap_err();
        assert!(err.starts_with("--consent-at"), "{bad}: {err}");
    }
    let err = parse_flag_time("--refused-at", "10:00", None).unwrap_err();
    assert!(err.contains("RFC 3339"), "{err}");
}

#[test]
fn without_points_everything_is_consented() {
    let mut timeline = Timeline::new(Vec::new(), at("2024-05-01T10:00:00Z"));
    assert_eq!(timeline.initial().phase, ConsentPhase::Consented);
    assert_eq!(
        timeline.before(at("2024-05-01T11:00:00Z"), None),
        [timeline.initial()]
    );
    assert!(timeline.remaining().is_empty());
}

#[test]
fn a_replay_announces_each_switch_once_in_order() {
    let consent = point(ConsentPhase::Consented, "2024-05-01T10:00:05Z", None);
    let refuse = point(ConsentPhase::Refused, "2024-05-01T10:00:20Z", None);
    let mut timeline = Timeline::new(
        vec![refuse.clone(), consent.clone()],
        at("2024-05-01T10:00:00Z"),
    );
    let initial = timeline.initial();
    assert_eq!(initial.phase, ConsentPhase::PreConsent);
    assert_eq!(initial.since, at("2024-05-01T10:00:00Z"));
    assert_eq!(timeline.before(at("2024-05-01T10:00:01Z"), None), [initial]);
    assert_eq!(
        timeline.before(at("2024-05-01T10:00:30Z"), None),
        [consent.change, refuse.change],
        "both switches happened before this entry"
    );
    assert!(timeline.remaining().is_empty());
}

#[test]
fn switches_after_the_last_entry_are_still_announced() {
    let consent = point(ConsentPhase::Consented, "2024-05-01T10:00:05Z", None);
    let mut timeline = Timeline::new(vec![consent.clone()], at("2024-05-01T10:00:00Z"));
    let _ = timeline.before(at("2024-05-01T10:00:01Z"), None);
    assert_eq!(timeline.remaining(), [consent.change]);
}

#[test]
fn a_page_starting_before_the_capture_is_the_initial_phase() {
    let pre = point(
        ConsentPhase::PreConsent,
        "2024-05-01T09:59:50Z",
        Some("phase-1-pre-consent"),
    );
    let timeline = Timeline::new(vec![pre.clone()], at("2024-05-01T10:00:00Z"));
    assert_eq!(timeline.initial(), pre.change);
}

#[test]
fn the_entry_page_wins_over_a_millisecond_tie() {
    // leakscope rounds to milliseconds: a flow that started in pre-consent
    // can carry the same time as the switch to consented.
    let pre = point(
        ConsentPhase::PreConsent,
        "2024-05-01T10:00:00Z",
        Some("phase-1-pre-consent"),
    );
    let consent = point(
        ConsentPhase::Consented,
        "2024-05-01T10:00:05.123Z",
        Some("phase-2-consented"),
    );
    let mut timeline = Timeline::new(
        vec![pre.clone(), consent.clone()],
        at("2024-05-01T10:00:00Z"),
    );
    let tie = at("2024-05-01T10:00:05.123Z");
    assert!(
        timeline.page_order(Some("phase-1-pre-consent"))
            < timeline.page_order(Some("phase-2-consented"))
    );
    assert_eq!(
        timeline.before(tie, Some("phase-1-pre-consent")),
        [pre.change]
    );
    assert_eq!(
        timeline.before(tie, Some("phase-2-consented")),
        [consent.change]
    );
    assert_eq!(timeline.before(tie, None), [consent.change]);
    assert_eq!(timeline.page_order(Some("unknown")), 0);
}
