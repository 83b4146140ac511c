//! `report.html`: the summary as one self-contained page.
//!
//! Contract: every piece of text that came from a session file goes
//! through [`esc`] — hosts, URLs, evidence and even identifier names are
//! ultimately chosen by the traffic under test, so nothing is trusted. The
//! page loads nothing: inline CSS and SVG, no script, no URL in any `src`
//! or `href`.

use super::html_css::CSS;
use super::read::FindingLine;
use super::summary::{Aggregate, PhaseOut, SdkRow, Summary, TlsRefusedRow, VerdictRow};
use super::svg;
use std::fmt::Write as _;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

/// Renders the whole page; `now` is the generation time shown in it.
pub fn render(agg: &Aggregate, now: OffsetDateTime) -> String {
    let s = &agg.summary;
    let mut out = String::with_capacity(64 * 1024);
    let title = s.session.app.as_deref().unwrap_or("App under test");
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"leakscope {}\">\n\
         <title>Privacy report: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&s.leakscope_version),
        esc(title)
    );
    header(&mut out, s, now);
    phases(&mut out, &s.session.phases);
    let day = s.session.started.to_offset(time::UtcOffset::UTC).date();
    verdicts(&mut out, &s.verdicts, day);
    sdks(&mut out, &s.sdks, day);
    out.push_str("<section id=\"timeline-section\" class=\"major\">\n<h2>4. Timeline</h2>\n");
    out.push_str(
        "<p class=\"lead\">Flows per time slice (grey bars) and findings (dots, one lane per \
         violation; bigger dots are more findings). Vertical lines mark consent phase switches.</p>\n",
    );
    out.push_str(&svg::timeline(s, &agg.timeline));
    out.push_str("</section>\n");
    tls_refused(&mut out, &s.tls_refused);
    details(&mut out, &agg.details, agg.details_omitted, day);
    notes(&mut out, s);
    let _ = write!(
        out,
        "<footer>Generated {} by leakscope {} from the files in this directory. \
         All times are UTC.</footer>\n</main>\n</body>\n</html>\n",
        esc(&format_time(now)),
        esc(&s.leakscope_version)
    );
    out
}

fn header(out: &mut String, s: &Summary, now: OffsetDateTime) {
    let session = &s.session;
    out.push_str("<header>\n<div class=\"kicker\">Privacy audit report &middot; leakscope</div>\n");
    let _ = writeln!(
        out,
        "<h1>{}</h1>",
        esc(session
            .app
            .as_deref()
            .unwrap_or("App under test (no app named in the profile)"))
    );
    out.push_str("<dl class=\"meta\">\n");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", esc(name), value);
    };
    row("App", opt(&session.app));
    row("Device", opt(&session.device_model));
    let span = match session.ended {
        Some(end) => format!(
            "{} &ndash; {} ({})",
            esc(&format_time(session.started)),
            esc(&format_time(end)),
            esc(&format_duration(end - session.started))
        ),
        None => format!(
            "{} &ndash; <em>no clean end recorded</em> (the session was interrupted)",
            esc(&format_time(session.started))
        ),
    };
    row("Session", span);
    row("Mode", esc(&session.mode));
    if let Some(source) = &session.source {
        row("Source", esc(source));
    }
    row(
        "Recorded with",
        format!("leakscope {}", esc(&session.leakscope_version)),
    );
    row(
        "Report",
        format!(
            "generated {} by leakscope {}",
            esc(&format_time(now)),
            esc(&s.leakscope_version)
        ),
    );
    out.push_str("</dl>\n<div class=\"figures\">\n");
    let c = &s.counts;
    let figures = [
        ("flows", c.flows, false),
        ("findings", c.findings, false),
        (
            "findings with violations",
            c.findings_with_violations,
            c.findings_with_violations > 0,
        ),
        ("verdict rows", s.verdicts.len() as u64, false),
        ("third-party SDKs", s.sdks.len() as u64, false),
        ("refused TLS handshakes", c.tls_refused, false),
    ];
    for (label, value, alert) in figures {
        let _ = writeln!(
            out,
            "<div class=\"figure{}\"><b>{value}</b><span>{label}</span></div>",
            if alert { " alert" } else { "" }
        );
    }
    out.push_str("</div>\n");
    if !c.violations_by_kind.is_empty() {
        out.push_str("<p>Violations: ");
        for (kind, n) in &c.violations_by_kind {
            let _ = write!(out, "{} ", badge_with(kind, &format!("{kind}: {n}")));
        }
        out.push_str("</p>\n");
    }
    out.push_str("</header>\n");
}

fn phases(out: &mut String, phases: &[PhaseOut]) {
    out.push_str("<section id=\"phases-section\">\n<h2>1. Consent phases</h2>\n");
    out.push_str(
        "<p class=\"lead\">The tester switched phases as the test went on; every flow and finding \
         carries the phase that was current when its request started.</p>\n",
    );
    out.push_str(
        "<table id=\"phases\">\n<thead><tr><th class=\"num\">#</th><th>Phase</th><th>From</th>\
         <th>Until</th><th>Duration</th><th class=\"num\">Flows started</th>\
         <th class=\"num\">Findings</th></tr></thead>\n<tbody>\n",
    );
    for (i, p) in phases.iter().enumerate() {
        let (until, duration) = match p.until {
            Some(u) => (format_time(u), format_duration(u - p.since)),
            None => ("(end not recorded)".to_owned(), String::new()),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            i + 1,
            phase_label(&p.phase),
            esc(&format_time(p.since)),
            esc(&until),
            esc(&duration),
            p.flows,
            p.findings
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn verdicts(out: &mut String, rows: &[VerdictRow], day: Date) {
    out.push_str("<section id=\"verdicts-section\" class=\"major\">\n<h2>2. Verdicts</h2>\n");
    out.push_str(
        "<p class=\"lead\">Each row is one identifier reaching one recipient in one consent phase. \
         The recipient is the SDK when the host belongs to a known SDK, otherwise the host. Rows \
         with violations come first.</p>\n",
    );
    if rows.is_empty() {
        out.push_str("<p><em>No personal identifiers were found in this session.</em></p>\n");
    }
    out.push_str(
        "<table id=\"verdicts\">\n<thead><tr><th>Identifier</th><th>Recipient</th><th>Party</th>\
         <th>Phase</th><th class=\"num\">Findings</th><th>Violations</th><th>Encodings</th>\
         <th>Where</th><th>Seen (UTC)</th><th>Flows</th></tr></thead>\n<tbody>\n",
    );
    for r in rows {
        let recipient = match &r.sdk {
            Some(sdk) => format!(
                "<b>{}</b><br><span class=\"muted small\">{} &middot; {}</span>",
                esc(&sdk.name),
                esc(&sdk.vendor),
                esc(&r.hosts.join(", "))
            ),
            None => format!("<span class=\"mono\">{}</span>", esc(&r.recipient)),
        };
        let _ = writeln!(
            out,
            "<tr{}><td><b>{}</b></td><td class=\"wrap\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"wrap\">{}</td>\
             <td class=\"small nowrap\">{}</td><td class=\"small\">{}</td></tr>",
            if r.violations.is_empty() {
                ""
            } else {
                " class=\"violating\""
            },
            esc(&r.identifier),
            recipient,
            esc(&r.party),
            phase_label(&r.phase),
            count_cell(r.count, r.incoming),
            badges(&r.violations),
            tags(&r.encodings),
            tags(&r.places),
            esc(&span(r.first_seen, r.last_seen, day)),
            esc(&join_ids(&r.flow_ids, r.count)),
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn sdks(out: &mut String, rows: &[SdkRow], day: Date) {
    out.push_str("<section id=\"sdks-section\">\n<h2>3. Third-party SDKs contacted</h2>\n");
    out.push_str(
        "<p class=\"lead\">SDKs whose endpoints the app contacted, as attributed by leakscope's SDK \
         catalogue, with the identifiers each received.</p>\n",
    );
    if rows.is_empty() {
        out.push_str("<p><em>No known third-party SDK endpoint was contacted.</em></p>\n");
        out.push_str("</section>\n");
        return;
    }
    out.push_str(
        "<table id=\"sdks\">\n<thead><tr><th>SDK</th><th>Vendor</th><th>Category</th><th>Hosts</th>\
         <th>Identifiers received</th><th class=\"num\">Findings</th>\
         <th class=\"num\">Requests</th><th>First contact (UTC)</th><th>Phases</th></tr></thead>\n<tbody>\n",
    );
    for r in rows {
        let received = if r.identifiers.is_empty() {
            "<span class=\"muted\">none found</span>".to_owned()
        } else {
            tags(&r.identifiers)
        };
        let phases: Vec<String> = r.phases.iter().map(|p| phase_label(p)).collect();
        let _ = writeln!(
            out,
            "<tr{}><td><b>{}</b></td><td>{}</td><td>{}</td><td class=\"wrap mono\">{}</td>\
             <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"small\">{}</td>\
             <td>{}</td></tr>",
            if r.findings > 0 {
                " class=\"violating\""
            } else {
                ""
            },
            esc(&r.name),
            esc(&r.vendor),
            esc(&r.category),
            esc(&r.hosts.join(", ")),
            received,
            r.findings,
            r.contacts.map_or("&ndash;".to_owned(), |n| n.to_string()),
            r.first_contact
                .map_or(String::new(), |t| esc(&short_time(t, day))),
            phases.join(" ")
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn tls_refused(out: &mut String, rows: &[TlsRefusedRow]) {
    out.push_str(
        "<section id=\"tls-section\">\n<h2>5. Refused TLS (likely certificate pinning)</h2>\n",
    );
    if rows.is_empty() {
        out.push_str(
            "<p>No TLS handshake was refused: every TLS connection accepted leakscope's \
             certificate.</p>\n</section>\n",
        );
        return;
    }
    out.push_str(
        "<p class=\"lead\">The app aborted the TLS handshake with leakscope's certificate for these \
         hosts, so their traffic could not be inspected. This is typical of certificate pinning; \
         what these connections carry is unknown.</p>\n",
    );
    out.push_str(
        "<table id=\"tls-refused\">\n<thead><tr><th>Host (server name)</th>\
         <th class=\"num\">Refused handshakes</th><th>TLS alert</th></tr></thead>\n<tbody>\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "<tr><td class=\"mono wrap\">{}</td><td class=\"num\">{}</td><td class=\"small\">{}</td></tr>",
            esc(&r.host),
            r.count,
            esc(r.alert.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn details(out: &mut String, findings: &[FindingLine], omitted: u64, day: Date) {
    out.push_str(
        "<section id=\"findings-section\" class=\"major\">\n<h2>6. Findings in detail</h2>\n",
    );
    out.push_str(
        "<p class=\"lead\">Findings with violations first, each group in time order. The evidence \
         is an excerpt of the traffic as captured. To see the whole exchange, open \
         <code>session.har</code> in a HAR viewer or the browser's developer tools (Network, \
         import HAR) and find the entry whose <code>_leakscope.flow_id</code> is the flow number \
         given here.</p>\n",
    );
    if findings.is_empty() {
        out.push_str("<p><em>No findings.</em></p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table id=\"findings\" class=\"detail\">\n<thead><tr><th class=\"num\">#</th><th>Time (UTC)</th>\
         <th>Identifier</th><th>Recipient</th><th>Phase</th><th>Where</th><th>Encoding</th>\
         <th>Violations</th></tr></thead>\n",
    );
    for (i, f) in findings.iter().enumerate() {
        let chain = if f.decoded_from.is_empty() {
            String::new()
        } else {
            format!(
                "<br><span class=\"muted small\">in {}</span>",
                esc(&f.decoded_from.join(" → "))
            )
        };
        let recipient = match &f.sdk {
            Some(sdk) => format!(
                "<b>{}</b><br><span class=\"mono small\">{}</span>",
                esc(&sdk.name),
                esc(&f.host)
            ),
            None => format!("<span class=\"mono\">{}</span>", esc(&f.host)),
        };
        let _ = writeln!(
            out,
            "<tbody{}><tr><td class=\"num\">{}</td><td class=\"small\">{}</td><td><b>{}</b><br>\
             <span class=\"muted small\">{} &middot; {}</span></td><td class=\"wrap\">{}<br>\
             <span class=\"muted small\">{} party</span></td><td>{}</td><td class=\"mono wrap\">{}</td>\
             <td>{}{}</td><td>{}</td></tr>",
            if f.violations.is_empty() {
                ""
            } else {
                " class=\"violating\""
            },
            i + 1,
            esc(&short_time(f.ts, day)),
            esc(&f.identifier),
            esc(&f.detector),
            esc(&f.confidence),
            recipient,
            esc(&f.party),
            phase_label(&f.phase),
            esc(&f.place),
            tags(std::slice::from_ref(&f.encoding)),
            chain,
            badges(&f.violations),
        );
        let _ = writeln!(
            out,
            "<tr class=\"evidence\"><td></td><td colspan=\"7\"><span class=\"mono small wrap\">{} {}</span>\
             <pre class=\"evidence\">{}</pre><span class=\"small muted\">HAR entry: flow_id {} \
             (open session.har and filter on <code>_leakscope.flow_id</code> = {})</span></td></tr></tbody>",
            esc(&f.method),
            esc(&f.url),
            esc(&f.evidence),
            f.flow_id,
            f.flow_id
        );
    }
    out.push_str("</table>\n");
    if omitted > 0 {
        let _ = writeln!(
            out,
            "<p><b>{omitted} more finding(s)</b> are not shown here; all findings are in \
             <code>findings.jsonl</code> (one JSON object per line).</p>"
        );
    }
    out.push_str("</section>\n");
}

fn notes(out: &mut String, s: &Summary) {
    out.push_str("<section id=\"notes-section\">\n<h2>Notes</h2>\n<ul class=\"notes\">\n");
    for note in &s.notes {
        let _ = writeln!(out, "<li>{}</li>", esc(note));
    }
    out.push_str(
        "<li>Files: <code>flows.jsonl</code> (every flow), <code>findings.jsonl</code> (every \
         finding), <code>session.har</code> (HAR 1.2, entries carry <code>_leakscope.flow_id</code>), \
         <code>session.json</code>, and <code>summary.json</code> (the tables of this report).</li>\n",
    );
    out.push_str("</ul>\n</section>\n");
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline are not valid
            // in HTML text; show them as the replacement character.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn opt(value: &Option<String>) -> String {
    match value {
        Some(v) => esc(v),
        None => "<span class=\"muted\">not given (set it in the device profile)</span>".to_owned(),
    }
}

/// A CSS class suffix for a known name; anything else maps to `other`, so
/// no file content ever reaches a class attribute.
fn class_of<'a>(name: &str, known: &[&'a str]) -> &'a str {
    known
        .iter()
        .find(|k| **k == name)
        .copied()
        .unwrap_or("other")
}

const VIOLATIONS: [&str; 5] = [
    "pre-consent",
    "after-refusal",
    "third-party",
    "undeclared-sdk",
    "over-frequency",
];
const PHASES: [&str; 4] = ["pre-consent", "consented", "refused", "background"];

fn badge_with(violation: &str, text: &str) -> String {
    format!(
        "<span class=\"v v-{}\">{}</span>",
        class_of(violation, &VIOLATIONS),
        esc(text)
    )
}

fn badges(violations: &[String]) -> String {
    if violations.is_empty() {
        return "<span class=\"v v-none\">none</span>".to_owned();
    }
    violations
        .iter()
        .map(|v| badge_with(v, v))
        .collect::<Vec<_>>()
        .join("")
}

fn tags(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("<span class=\"tag\">{}</span>", esc(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn phase_label(phase: &str) -> String {
    format!(
        "<span class=\"phase phase-{}\">{}</span>",
        class_of(phase, &PHASES),
        esc(phase)
    )
}

/// The findings count, saying how many were only handed back by a server.
fn count_cell(count: u64, incoming: u64) -> String {
    if incoming == 0 {
        count.to_string()
    } else {
        format!("{count}<br><span class=\"muted small\">{incoming} in server replies</span>")
    }
}

fn join_ids(ids: &[u64], count: u64) -> String {
    let list: Vec<String> = ids.iter().map(u64::to_string).collect();
    let more = if count > ids.len() as u64 { " …" } else { "" };
    format!("{}{more}", list.join(", "))
}

/// `2026-11-28 20:14:03 UTC`.
pub fn format_time(t: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .map(|s| format!("{s} UTC"))
        .unwrap_or_else(|_| t.to_string())
}

/// `20:14:03` on the session's first day, else `2026-11-29 00:01:02`.
fn short_time(t: OffsetDateTime, day: Date) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    if t.date() == day {
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    } else {
        format_time(t).trim_end_matches(" UTC").to_owned()
    }
}

/// `20:14:03 – 20:15:10`, or one time when both are the same second.
fn span(first: OffsetDateTime, last: OffsetDateTime, day: Date) -> String {
    let (a, b) = (short_time(first, day), short_time(last, day));
    if a == b { a } else { format!("{a} – {b}") }
}

/// `1h 02m 05s`, `4m 10s`, `12s`; negative spans show as `0s`.
pub fn format_duration(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}
