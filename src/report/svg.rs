//! The timeline picture: inline SVG, x = time.
//!
//! Flows are grey bars per time bucket (height relative to the busiest
//! bucket), findings are dots in one lane per violation (radius grows with
//! the count, logarithmically, so one finding is still visible next to a
//! thousand), and each consent phase switch is a labelled vertical line
//! with its period lightly shaded. Hovering a dot or bar shows its counts
//! (SVG `<title>`, no script).

use super::html::{esc, format_time};
use super::html_css::{phase_colour, violation_colour};
use super::summary::{Summary, unix_ms};
use super::timeline::{LANES, Timeline};
use std::fmt::Write as _;
use time::OffsetDateTime;

const WIDTH: f64 = 1160.0;
const LEFT: f64 = 132.0;
const RIGHT: f64 = 16.0;
/// Rows of phase labels, so labels of close switches do not overlap.
const LABEL_ROWS: usize = 3;
const LABEL_ROW_HEIGHT: f64 = 15.0;
const FLOWS_TOP: f64 = LABEL_ROWS as f64 * LABEL_ROW_HEIGHT + 8.0;
const FLOWS_HEIGHT: f64 = 64.0;
const LANE_HEIGHT: f64 = 24.0;
/// Phase switches drawn; a runaway session with thousands of switches
/// would only draw a black smear.
const MAX_PHASE_LINES: usize = 200;
/// Rough width of a label, to decide when the next one needs a new row.
const LABEL_WIDTH: f64 = 118.0;

/// The `<svg>` element for the summary's session and the timeline.
pub fn timeline(s: &Summary, t: &Timeline) -> String {
    let lanes_top = FLOWS_TOP + FLOWS_HEIGHT + 10.0;
    let lanes_bottom = lanes_top + LANE_HEIGHT * LANES.len() as f64;
    let axis_y = lanes_bottom + 6.0;
    let height = axis_y + 26.0;
    let (d0, d1) = domain(s, t);
    let x = |ms: i64| LEFT + (ms - d0) as f64 / (d1 - d0) as f64 * (WIDTH - LEFT - RIGHT);

    let mut out = String::with_capacity(32 * 1024);
    let _ = writeln!(
        out,
        "<div class=\"timeline\"><svg id=\"timeline\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" aria-label=\"Timeline of flows and findings\" \
         font-family=\"system-ui, sans-serif\" font-size=\"11\">"
    );

    // Phase periods, shaded, behind everything else.
    let phases: Vec<_> = s.session.phases.iter().take(MAX_PHASE_LINES).collect();
    for p in &phases {
        let start = x(unix_ms(p.since).clamp(d0, d1));
        let end = x(p.until.map_or(d1, unix_ms).clamp(d0, d1));
        let _ = writeln!(
            out,
            "<rect class=\"band\" x=\"{start:.1}\" y=\"{FLOWS_TOP:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
             fill=\"{}\" fill-opacity=\"0.06\"/>",
            (end - start).max(0.0),
            lanes_bottom - FLOWS_TOP,
            phase_colour(&p.phase)
        );
    }

    // Lane labels and separators.
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#374151\">flows</text>",
        LEFT - 8.0,
        FLOWS_TOP + FLOWS_HEIGHT - 4.0
    );
    for (i, lane) in LANES.iter().enumerate() {
        let y = lanes_top + LANE_HEIGHT * i as f64;
        let name = if lane.is_empty() {
            "no violation"
        } else {
            lane
        };
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{}\">{name}</text>",
            WIDTH - RIGHT,
            LEFT - 8.0,
            y + LANE_HEIGHT / 2.0 + 4.0,
            violation_colour(lane)
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#9ca3af\"/>",
        WIDTH - RIGHT,
        FLOWS_TOP + FLOWS_HEIGHT,
        FLOWS_TOP + FLOWS_HEIGHT
    );

    // Flow bars.
    let width_ms = t.width_ms();
    let busiest = t.buckets().map(|(_, b)| b.flows).max().unwrap_or(0).max(1);
    for (start, b) in t.buckets().filter(|(_, b)| b.flows > 0) {
        let x0 = x(start.clamp(d0, d1));
        let x1 = x(start.saturating_add(width_ms).clamp(d0, d1));
        let h = (b.flows as f64 / busiest as f64 * FLOWS_HEIGHT).max(1.5);
        let _ = writeln!(
            out,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#9ca3af\">\
             <title>{}: {} flow(s)</title></rect>",
            FLOWS_TOP + FLOWS_HEIGHT - h,
            (x1 - x0 - 0.4).max(1.0),
            esc(&bucket_label(start)),
            b.flows
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#6b7280\" font-size=\"10\">max {busiest}</text>",
        LEFT - 8.0,
        FLOWS_TOP + 10.0
    );

    // Finding dots.
    for (start, b) in t.buckets() {
        let cx = x(start.saturating_add(width_ms / 2).clamp(d0, d1));
        for (i, &count) in b.findings.iter().enumerate().filter(|(_, c)| **c > 0) {
            let cy = lanes_top + LANE_HEIGHT * i as f64 + LANE_HEIGHT / 2.0;
            let r = (3.5 + 1.3 * (count as f64).ln()).min(LANE_HEIGHT / 2.0 - 2.0);
            let lane = if LANES[i].is_empty() {
                "finding(s) without violation"
            } else {
                LANES[i]
            };
            let _ = writeln!(
                out,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{r:.1}\" fill=\"{}\" fill-opacity=\"0.85\">\
                 <title>{}: {count} {lane}</title></circle>",
                violation_colour(LANES[i]),
                esc(&bucket_label(start))
            );
        }
    }

    // Phase switch lines and labels, drawn last so they stay on top.
    let mut row_ends = [f64::NEG_INFINITY; LABEL_ROWS];
    for p in &phases {
        let at = unix_ms(p.since);
        if at < d0 || at > d1 {
            continue;
        }
        let lx = x(at);
        let row = row_ends
            .iter()
            .position(|end| lx > *end + 4.0)
            .unwrap_or(LABEL_ROWS - 1);
        row_ends[row] = lx + LABEL_WIDTH;
        let label_y = LABEL_ROW_HEIGHT * (row as f64 + 1.0) - 3.0;
        let consent = p.phase == "consented";
        let colour = phase_colour(&p.phase);
        let _ = writeln!(
            out,
            "<line x1=\"{lx:.1}\" x2=\"{lx:.1}\" y1=\"{:.1}\" y2=\"{lanes_bottom:.1}\" stroke=\"{colour}\" \
             stroke-width=\"{}\"{}/><text x=\"{:.1}\" y=\"{label_y:.1}\" fill=\"{colour}\" \
             font-weight=\"600\">{}<title>{} from {}</title></text>",
            label_y + 3.0,
            if consent { "2.5" } else { "1.5" },
            if consent {
                ""
            } else {
                " stroke-dasharray=\"4 3\""
            },
            lx + 3.0,
            esc(&if consent {
                "consent given".to_owned()
            } else {
                p.phase.clone()
            }),
            esc(&p.phase),
            esc(&format_time(p.since))
        );
    }

    axis(&mut out, d0, d1, axis_y, &x);
    out.push_str("</svg>\n");
    out.push_str("<div class=\"legend\">");
    for lane in LANES.iter().filter(|l| !l.is_empty()) {
        let _ = write!(out, "<span class=\"v v-{lane}\">&#9679; {lane}</span>");
    }
    let _ = writeln!(
        out,
        "<span class=\"v v-other\">&#9679; no violation</span> &middot; one time slice = {}</div></div>",
        esc(&slice_label(width_ms))
    );
    out
}

/// The time range drawn (Unix ms): the session span, widened to include
/// every event and phase switch; never empty.
fn domain(s: &Summary, t: &Timeline) -> (i64, i64) {
    let mut d0 = unix_ms(s.session.started);
    let mut d1 = s.session.ended.map_or(d0, unix_ms);
    if let Some((first, last)) = t.span_ms() {
        d0 = d0.min(first);
        d1 = d1.max(last.saturating_add(t.width_ms()));
    }
    for p in &s.session.phases {
        d0 = d0.min(unix_ms(p.since));
        d1 = d1.max(unix_ms(p.since));
    }
    if d1 <= d0 {
        d1 = d0.saturating_add(1000);
    }
    (d0, d1)
}

/// Tick marks with clock labels at a round interval, at most ~8 of them.
fn axis(out: &mut String, d0: i64, d1: i64, y: f64, x: &dyn Fn(i64) -> f64) {
    const STEPS_S: [i64; 18] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200,
        86_400,
    ];
    let span = d1 - d0;
    let step_ms = STEPS_S
        .iter()
        .map(|s| s * 1000)
        .find(|step| span / step <= 8)
        .unwrap_or_else(|| (span / 8 / 86_400_000 + 1) * 86_400_000);
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#6b7280\"/>",
        WIDTH - RIGHT
    );
    let mut tick = d0
        .div_euclid(step_ms)
        .saturating_add(1)
        .saturating_mul(step_ms);
    let mut drawn = 0;
    while tick <= d1 && drawn < 12 {
        let tx = x(tick);
        let _ = write!(
            out,
            "<line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{y:.1}\" y2=\"{:.1}\" stroke=\"#6b7280\"/>",
            y + 5.0
        );
        // A label centred on a tick at the very edges would run into the
        // "UTC" caption or off the picture; the tick alone is enough there.
        if tx > LEFT + 28.0 && tx < WIDTH - RIGHT - 24.0 {
            let _ = write!(
                out,
                "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#374151\">{}</text>",
                y + 18.0,
                esc(&clock(tick, span > 86_400_000))
            );
        }
        out.push('\n');
        tick = tick.saturating_add(step_ms);
        drawn += 1;
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#6b7280\">UTC</text>",
        LEFT - 8.0,
        y + 18.0
    );
}

fn to_time(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `20:14:03`, or `11-28 20:14` for spans over a day.
fn clock(ms: i64, with_date: bool) -> String {
    let Some(t) = to_time(ms) else {
        return String::new();
    };
    if with_date {
        format!(
            "{:02}-{:02} {:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    } else {
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    }
}

fn bucket_label(start_ms: i64) -> String {
    to_time(start_ms).map(format_time).unwrap_or_default()
}

/// `250 ms`, `4 s`, `2 min 8 s`.
fn slice_label(width_ms: i64) -> String {
    match width_ms {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.3} s", ms as f64 / 1000.0).replace(".000", ""),
        ms => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
    }
}
