//! Throughput of the known-value search with a full device profile (every
//! identifier kind, every expansion) over ~4 MiB of realistic mixed
//! traffic: JSON bodies, form-encoded queries, HTML and base64 blobs, with
//! a few planted identifiers.
//!
//! Run: `cargo bench --bench known_values -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leakscope::detect::known::KnownValueMatcher;
use leakscope::detect::profile::DeviceProfile;

const PROFILE: &str = include_str!("../detectors/example-profile.toml");
const CORPUS_LEN: usize = 4 << 20;

/// Deterministic xorshift generator, so every run measures the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn word(&mut self, min: usize, extra: usize) -> String {
        let len = min + self.below(extra + 1);
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }

    fn digits(&mut self, min: usize, extra: usize) -> String {
        let len = min + self.below(extra + 1);
        (0..len)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    fn hex(&mut self, min: usize, extra: usize) -> String {
        let len = min + self.below(extra + 1);
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }
}

#[rustfmt::skip]
const KEYS: &[&str] = &[
    "id", "uid", "ts", "version", "channel", "sdk_ver", "os", "lang", "tz", "net", "carrier",
    "screen", "event", "page", "session", "sign", "token", "ref", "utm_source", "cb",
];

fn json_object(rng: &mut Rng) -> String {
    let mut out = String::from("{");
    for i in 0..(4 + rng.below(12)) {
        if i > 0 {
            out.push(',');
        }
        let key = rng.pick(KEYS);
        let value = match rng.below(6) {
            0 => rng.digits(1, 12),
            1 => format!("\"{}\"", rng.hex(32, 0)),
            2 => format!("{}.{}", rng.digits(2, 0), rng.digits(6, 0)),
            3 => "true".to_string(),
            _ => format!("\"{} {}\"", rng.word(3, 7), rng.word(2, 5)),
        };
        out.push_str(&format!("\"{key}\":{value}"));
    }
    out.push_str("}\n");
    out
}

fn form(rng: &mut Rng) -> String {
    let mut out = String::from("GET /api/v2/");
    out.push_str(&rng.word(6, 0));
    out.push('?');
    for i in 0..(3 + rng.below(8)) {
        if i > 0 {
            out.push('&');
        }
        let value = match rng.below(3) {
            0 => rng.digits(1, 11),
            1 => rng.hex(16, 0),
            _ => format!("{}%20{}", rng.word(5, 0), rng.word(4, 0)),
        };
        out.push_str(&format!("{}={value}", rng.pick(KEYS)));
    }
    out.push_str(" HTTP/1.1\r\nHost: log.example.net\r\nUser-Agent: okhttp/4.12.0\r\n\r\n");
    out
}

fn html(rng: &mut Rng) -> String {
    format!(
        "<div class=\"{}\"><a href=\"/{}/{}\">{} {} {}</a><span>{}</span></div>\n",
        rng.word(6, 0),
        rng.word(5, 0),
        rng.digits(6, 0),
        rng.word(7, 0),
        rng.word(4, 0),
        rng.word(9, 0),
        rng.digits(3, 0)
    )
}

fn blob(rng: &mut Rng) -> String {
    let raw: Vec<u8> = json_object(rng).into_bytes();
    format!("{{\"data\":\"{}\"}}\n", STANDARD.encode(raw))
}

/// ~4 MiB of mixed text with a planted identifier every ~256 KiB.
fn corpus() -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let plants = [
        "{\"imei\":\"490154203237518\"}",
        "mac=02%3A1a%3A11%3Af0%3A3c%3A77&",
        "\"adid\":\"38400000-8cf0-11bd-b23e-10b96e40000d\"",
        "{\"phone\":\"13800138000\",\"lat\":39.90881,\"lng\":116.39752}",
    ];
    let mut out = String::with_capacity(CORPUS_LEN + 4096);
    let mut next_plant = 0;
    while out.len() < CORPUS_LEN {
        match rng.below(10) {
            0..=3 => out.push_str(&json_object(&mut rng)),
            4..=5 => out.push_str(&form(&mut rng)),
            6..=7 => out.push_str(&html(&mut rng)),
            _ => out.push_str(&blob(&mut rng)),
        }
        if out.len() / (256 << 10) > next_plant {
            out.push_str(plants[next_plant % plants.len()]);
            next_plant += 1;
        }
    }
    out.into_bytes()
}

fn search(matcher: &KnownValueMatcher, corpus: &[u8], chunk: usize) -> usize {
    let mut found = 0;
    let mut count = |_| found += 1;
    let mut stream = matcher.stream();
    for piece in corpus.chunks(chunk) {
        stream.feed(piece, &mut count);
    }
    stream.finish(&mut count);
    found
}

fn bench(c: &mut Criterion) {
    let profile =
        DeviceProfile::from_toml(PROFILE, "example-profile.toml").expect("example profile");
    let matcher = KnownValueMatcher::new(&profile);
    let corpus = corpus();
    eprintln!(
        "known_values: {} patterns, {} corpus bytes, {} matches",
        matcher.pattern_count(),
        corpus.len(),
        search(&matcher, &corpus, 16 << 10)
    );
    let mut group = c.benchmark_group("known_values");
    group.throughput(Throughput::Bytes(corpus.len() as u64));
    for chunk in [16 << 10, 1 << 20] {
        group.bench_function(format!("full_profile/chunk_{}k", chunk >> 10), |b| {
            b.iter(|| search(&matcher, black_box(&corpus), chunk))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
