//! The report's stylesheet, inlined into `report.html`.
//!
//! System fonts only (nothing is fetched), colours that survive greyscale
//! printing because every badge also carries its name as text and a
//! border, and print rules: no backgrounds needed, rows never split, big
//! sections start on a new page.

/// Colour of each violation kind (also used by the timeline).
pub fn violation_colour(violation: &str) -> &'static str {
    match violation {
        "pre-consent" => "#b3261e",
        "after-refusal" => "#6a1b9a",
        "third-party" => "#a15c00",
        "undeclared-sdk" => "#c2410c",
        "over-frequency" => "#1d4ed8",
        _ => "#6b7280",
    }
}

/// Colour of each consent phase's marker line.
pub fn phase_colour(phase: &str) -> &'static str {
    match phase {
        "pre-consent" => "#b3261e",
        "consented" => "#15803d",
        "refused" => "#6a1b9a",
        "background" => "#475569",
        _ => "#6b7280",
    }
}

pub const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; padding: 28px 32px 48px; color: #1f2328; background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
        "Noto Sans", "Liberation Sans", "PingFang SC", "Microsoft YaHei", sans-serif;
}
main { max-width: 1240px; margin: 0 auto; }
h1 { font-size: 26px; margin: 2px 0 14px; font-weight: 650; }
h2 { font-size: 18px; margin: 34px 0 8px; padding-bottom: 5px; border-bottom: 2px solid #1f2328; }
p { margin: 6px 0 10px; }
.kicker { text-transform: uppercase; letter-spacing: .08em; font-size: 12px; color: #57606a; }
.lead { color: #424a53; max-width: 900px; }
.muted { color: #6e7781; }
.small { font-size: 12px; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 0 0 16px; }
dl.meta dt { color: #57606a; }
dl.meta dd { margin: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 6px; }
.figure { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.figure b { display: block; font-size: 22px; font-weight: 650; }
.figure span { color: #57606a; font-size: 12px; }
.figure.alert { border-color: #b3261e; }
.figure.alert b { color: #b3261e; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; }
th, td { border: 1px solid #d0d7de; padding: 5px 7px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; font-size: 12.5px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tr.violating td:first-child { box-shadow: inset 3px 0 0 #b3261e; }
td.wrap { overflow-wrap: anywhere; }
.nowrap { white-space: nowrap; }
.v {
  display: inline-block; padding: 0 6px; margin: 1px 3px 1px 0; border-radius: 3px;
  border: 1px solid currentColor; font-size: 11.5px; font-weight: 600; white-space: nowrap;
}
.v-pre-consent { color: #b3261e; background: #fdecea; }
.v-after-refusal { color: #6a1b9a; background: #f3e8fb; }
.v-third-party { color: #8a4e00; background: #fff4e0; }
.v-undeclared-sdk { color: #c2410c; background: #fff0e6; }
.v-over-frequency { color: #1d4ed8; background: #e8f0ff; }
.v-other { color: #57606a; background: #f3f4f6; }
.v-none { color: #6e7781; border-style: dashed; font-weight: 400; }
.phase { font-weight: 600; white-space: nowrap; }
.phase-pre-consent { color: #b3261e; }
.phase-consented { color: #15803d; }
.phase-refused { color: #6a1b9a; }
.phase-background { color: #475569; }
.tag { display: inline-block; font-size: 12px; padding: 0 5px; border: 1px solid #d0d7de; border-radius: 3px; margin: 1px 2px 1px 0; background: #f6f8fa; }
.timeline { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px; }
.timeline svg { display: block; width: 100%; height: auto; }
.legend { margin: 6px 0 0; font-size: 12px; color: #57606a; }
.legend .v { margin-right: 8px; }
table.detail td { font-size: 12.5px; }
table.detail tbody { break-inside: avoid; page-break-inside: avoid; }
table.detail tbody td { background: #fff; }
table.detail tbody.violating tr:first-child td { background: #fffafa; }
table.detail tbody tr.evidence td { border-top: none; }
pre.evidence {
  margin: 2px 0; padding: 6px 8px; background: #f6f8fa; border: 1px solid #e1e4e8; border-radius: 4px;
  white-space: pre-wrap; overflow-wrap: anywhere; max-height: 14em; overflow: auto;
  font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px;
}
.notes li { margin: 3px 0; }
footer { margin-top: 40px; padding-top: 10px; border-top: 1px solid #d0d7de; color: #6e7781; font-size: 12px; }
@media print {
  @page { margin: 14mm 12mm; }
  body { padding: 0; font-size: 10.5pt; }
  main { max-width: none; }
  *, *::before, *::after { background: transparent !important; box-shadow: none !important; }
  section.major { break-before: page; page-break-before: always; }
  h2 { break-after: avoid; page-break-after: avoid; }
  thead { display: table-header-group; }
  tr, .figure, .timeline, dl.meta { break-inside: avoid; page-break-inside: avoid; }
  tr.violating td:first-child { border-left: 3px solid #b3261e; }
  pre.evidence { max-height: none; overflow: visible; }
  /* A portrait page is narrower than a screen: smaller table text, and the
     time column may wrap, so the recipient column keeps a usable width. */
  table { font-size: 8.5pt; }
  th, td { padding: 3px 4px; }
  th { font-size: 8pt; }
  .nowrap { white-space: normal; }
  .timeline svg .band { display: none; }
}
"#;
