//! Throughput of each detector, and of the whole per-message pipeline, over
//! ~4 MiB of realistic mixed traffic generated here (deterministic, so every
//! run measures the same bytes): JSON analytics batches full of timestamps,
//! order numbers, UUID request ids and hex digests; form-encoded bodies;
//! HTTP header blocks; HTML/JS text; base64 blobs (some gzip'd); and a few
//! planted identifiers (IMEI, phone, e-mail, MAC, ANDROID_ID, lat/lon).
//!
//! Groups (all `Throughput::Bytes` of the corpus):
//! - `known_values`: the profile search alone (full example profile);
//! - `patterns`, `keys`: one detector alone;
//! - `pipeline`: `MessageScan` (all three detectors plus nested base64 and
//!   percent decoding), the corpus as one message, and the corpus cut into
//!   its records as separate messages (per-message costs included); and
//!   `binary_body`: 4 MiB of noise read as a body, which only the
//!   known-value search reads.
//!
//! Every group feeds 16 KiB chunks, as the proxy does.
//!
//! Time is the benchmark thread's CPU time, not wall-clock time: the
//! throughput is per core, and it stays comparable on a machine busy with
//! other work. Set `DETECTORS_WALL_TIME=1` to measure wall-clock time.
//!
//! Run: `cargo bench --bench detectors -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leakscope::detect::keys::KeyScanner;
use leakscope::detect::known::KnownValueMatcher;
use leakscope::detect::patterns::PatternScanner;
use leakscope::detect::profile::DeviceProfile;
use leakscope::detect::rules::RuleSet;
use leakscope::detect::scan::{Detectors, MessageScan, ScanLimits};

const PROFILE: &str = include_str!("../detectors/example-profile.toml");
const CORPUS_LEN: usize = 4 << 20;
/// What the detectors find in the corpus; a change here is a change in
/// what they report, not in how fast.
const EXPECTED: (usize, usize, usize, usize) = (29, 53, 60, 9);
const CHUNK: usize = 16 << 10;

/// Deterministic xorshift generator.
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

    fn chars_from(&mut self, set: &[u8], min: usize, extra: usize) -> String {
        let len = min + self.below(extra + 1);
        (0..len)
            .map(|_| char::from(set[self.below(set.len())]))
            .collect()
    }

    fn word(&mut self, min: usize, extra: usize) -> String {
        self.chars_from(b"abcdefghijklmnopqrstuvwxyz", min, extra)
    }

    fn digits(&mut self, min: usize, extra: usize) -> String {
        self.chars_from(b"0123456789", min, extra)
    }

    fn hex(&mut self, len: usize) -> String {
        self.chars_from(b"0123456789abcdef", len, 0)
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-a{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(3),
            self.hex(12)
        )
    }

    fn sentence(&mut self, words: usize) -> String {
        let mut out = Vec::new();
        for _ in 0..words {
            out.push(self.word(2, 8));
        }
        out.join(" ")
    }
}

#[rustfmt::skip]
const EVENTS: &[&str] = &[
    "app_start", "page_view", "click", "impression", "purchase", "add_to_cart", "search",
    "video_play", "push_open", "login",
];

#[rustfmt::skip]
const HOSTS: &[&str] = &[
    "log.example.net", "api.shop-app.test", "cdn.static.test", "ulogs.umeng.com",
    "graph.facebook.com", "app-measurement.com",
];

/// A JSON analytics batch: what SDKs post most, and what made the old
/// detectors slow (long digit runs, hex digests, UUIDs, decimals).
fn analytics_batch(rng: &mut Rng) -> String {
    let mut out = format!(
        "{{\"sdk_ver\":\"{}.{}.{}\",\"app_ver\":\"{}\",\"batch\":[",
        rng.below(10),
        rng.below(20),
        rng.below(10),
        rng.digits(3, 2)
    );
    for i in 0..(2 + rng.below(6)) {
        if i > 0 {
            out.push(',');
        }
        let title_words = 3 + rng.below(5);
        let ev = format!(
            "{{\"event\":\"{}\",\"ts\":17{},\"seq\":{},\"request_id\":\"{}\",\
             \"order_no\":\"2023{}\",\"trace_id\":\"{}\",\"md5\":\"{}\",\"sha1\":\"{}\",\
             \"sha256\":\"{}\",\"duration\":{}.{},\"price\":{}.{},\"page\":\"/{}/{}\",\
             \"title\":\"{}\",\"props\":{{\"x\":{},\"y\":{},\"ratio\":0.{}}}}}",
            rng.pick(EVENTS),
            rng.digits(11, 0),
            rng.digits(1, 5),
            rng.uuid(),
            rng.digits(15, 0),
            rng.hex(32),
            rng.hex(32),
            rng.hex(40),
            rng.hex(64),
            rng.digits(1, 3),
            rng.digits(3, 3),
            rng.digits(1, 2),
            rng.digits(2, 0),
            rng.word(4, 6),
            rng.digits(6, 0),
            rng.sentence(title_words),
            rng.digits(1, 3),
            rng.digits(1, 3),
            rng.digits(4, 4)
        );
        out.push_str(&ev);
    }
    out.push_str(&format!("],\"sign\":\"{}\"}}\n", rng.hex(64)));
    out
}

fn form_body(rng: &mut Rng) -> String {
    let mut out = format!(
        "POST /v1/track HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         User-Agent: Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)\r\n\
         X-Request-Id: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        rng.pick(HOSTS),
        rng.uuid(),
        rng.chars_from(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            40,
            20
        )
    );
    out.push_str(&format!(
        "event={}&ts=17{}&nonce={}&sig={}&page=%2F{}%2F{}&q={}%20{}&cb={}&lang=en-US&net=wifi\n",
        rng.pick(EVENTS),
        rng.digits(11, 0),
        rng.hex(16),
        rng.hex(40),
        rng.word(4, 4),
        rng.digits(5, 3),
        rng.word(3, 5),
        rng.word(3, 5),
        rng.digits(8, 5)
    ));
    out
}

fn html_js(rng: &mut Rng) -> String {
    format!(
        "<div class=\"card {}\" data-id=\"{}\"><h2>{}</h2><p>{}. {}.</p>\
         <a href=\"https://{}/{}/{}?ref={}\">{}</a></div>\n\
         <script>var cfg={{timeout:{},retries:{},color:\"#{}\",build:\"{}.{}.{}\"}};\
         function {}(a,b){{return a*{}+b/{};}}</script>\n",
        rng.word(4, 4),
        rng.digits(5, 4),
        rng.sentence(4),
        rng.sentence(12),
        rng.sentence(9),
        rng.pick(HOSTS),
        rng.word(4, 4),
        rng.digits(6, 0),
        rng.word(5, 0),
        rng.sentence(3),
        rng.digits(3, 2),
        rng.below(5),
        rng.hex(6),
        rng.below(9),
        rng.below(30),
        rng.digits(3, 1),
        rng.word(5, 5),
        rng.digits(1, 2),
        rng.digits(1, 2)
    )
}

/// A base64 blob in JSON; every third one gzip'd, as SDK payloads often are.
fn base64_blob(rng: &mut Rng) -> String {
    let inner = analytics_batch(rng);
    let raw = if rng.below(3) == 0 {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = enc.write_all(inner.as_bytes());
        enc.finish().unwrap_or_default()
    } else {
        inner.into_bytes()
    };
    format!("{{\"data\":\"{}\"}}\n", STANDARD.encode(raw))
}

/// Identifiers the detectors should find: the profile's own (known-value
/// search) and other devices' (patterns and keys only).
const PLANTS: &[&str] = &[
    "{\"imei\":\"490154203237518\",\"model\":\"Pixel 7\"}\n",
    "{\"dev\":{\"imei\":\"356938035643809\",\"android_id\":\"9c2f1e4a7b3d5e60\"}}\n",
    "mac=02%3A1a%3A11%3Af0%3A3c%3A77&ssid=HomeNet&\n",
    "{\"wifi_mac\":\"3c:5a:b4:12:9e:0f\",\"bssid\":\"a4:2b:b0:c1:d2:e3\"}\n",
    "{\"phone\":\"13800138000\",\"lat\":39.90881,\"lng\":116.39752}\n",
    "contact=zhang.wei%40mail.qq.com&mobile=%2B8613912345678&\n",
    "{\"user_email\":\"li.na@corp-mail.cn\",\"loc\":\"31.230416,121.473701\"}\n",
    "\"adid\":\"38400000-8cf0-11bd-b23e-10b96e40000d\",\"android_id\":\"3f8a2c1be47d9a05\"\n",
];

/// ~4 MiB of mixed traffic, as records (one message each in the
/// `messages` variant), with a planted identifier every ~128 KiB.
fn corpus() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut records = Vec::new();
    let (mut len, mut next_plant) = (0, 0);
    while len < CORPUS_LEN {
        let mut record = match rng.below(10) {
            0..=3 => analytics_batch(&mut rng),
            4..=5 => form_body(&mut rng),
            6..=8 => html_js(&mut rng),
            _ => base64_blob(&mut rng),
        };
        len += record.len();
        if len / (128 << 10) > next_plant {
            record.push_str(PLANTS[next_plant % PLANTS.len()]);
            next_plant += 1;
        }
        records.push(record.into_bytes());
    }
    records
}

fn detectors() -> Detectors {
    let profile =
        DeviceProfile::from_toml(PROFILE, "example-profile.toml").expect("example profile");
    let rules = RuleSet::embedded();
    // As `PrivacySettings::compile` builds them.
    Detectors {
        known: KnownValueMatcher::new(&profile),
        patterns: PatternScanner::new(&rules),
        keys: KeyScanner::new(&rules),
        limits: ScanLimits::default(),
        redact: false,
    }
}

fn known_values(d: &Detectors, message: &[u8]) -> usize {
    let mut found = 0;
    let mut count = |_| found += 1;
    let mut stream = d.known.stream();
    for piece in message.chunks(CHUNK) {
        stream.feed(piece, &mut count);
    }
    stream.finish(&mut count);
    found
}

fn patterns(d: &Detectors, message: &[u8]) -> usize {
    let mut found = 0;
    let mut count = |_| found += 1;
    let mut stream = d.patterns.stream();
    for piece in message.chunks(CHUNK) {
        stream.feed(piece, &mut count);
    }
    stream.finish(&mut count);
    found
}

fn keys(d: &Detectors, message: &[u8]) -> usize {
    let mut found = 0;
    let mut count = |_| found += 1;
    let mut stream = d.keys.stream();
    for piece in message.chunks(CHUNK) {
        stream.feed(piece, &mut count);
    }
    stream.finish(&mut count);
    found
}

/// Each of `messages` scanned as a message of its own.
fn each_alone<M: AsRef<[u8]>>(d: &Detectors, messages: &[M]) -> usize {
    let scan = |m: &M| pipeline(d, black_box(m.as_ref()));
    messages.iter().map(scan).sum()
}

/// The corpus's lines, without their line breaks.
fn lines(whole: &[u8]) -> Vec<&[u8]> {
    whole.split(|&b| b == b'\n').collect()
}

fn pipeline(d: &Detectors, message: &[u8]) -> usize {
    let mut scan = MessageScan::new(d, Vec::new());
    for piece in message.chunks(CHUNK) {
        scan.feed(piece);
    }
    scan.finish().len()
}

/// For profilers (`perf stat`, callgrind): runs one group (`known_values`,
/// `patterns`, `keys`, `pipeline`, `per_record` or `per_line`) over the corpus a
/// fixed 5 times, without criterion, and exits. `setup` runs nothing: its
/// instruction count is the corpus and detector set-up, to subtract from
/// the others'.
fn profile_run(d: &Detectors, records: &[Vec<u8>], whole: &[u8], name: &str) -> ! {
    let lines = lines(whole);
    let run = || match name {
        "known_values" => known_values(d, black_box(whole)),
        "patterns" => patterns(d, black_box(whole)),
        "keys" => keys(d, black_box(whole)),
        "pipeline" => pipeline(d, black_box(whole)),
        "per_record" => each_alone(d, records),
        "per_line" => each_alone(d, &lines),
        "setup" => 0,
        _ => panic!("DETECTORS_RUN: unknown group {name}"),
    };
    let found: usize = (0..5).map(|_| run()).sum();
    eprintln!("{name}: 5 runs, {found} matches");
    std::process::exit(0)
}

/// The calling thread's CPU time (or wall-clock time, see the module docs).
struct CpuTime {
    wall: bool,
}

impl CpuTime {
    fn now(&self) -> Duration {
        if self.wall {
            return START.elapsed();
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write to, and the clock id is
        // a constant every Linux kernel supports.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        self.now()
    }

    fn end(&self, start: Duration) -> Duration {
        self.now().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds either way.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn config() -> Criterion<CpuTime> {
    let wall = std::env::var_os("DETECTORS_WALL_TIME").is_some();
    Criterion::default().with_measurement(CpuTime { wall })
}

fn bench(c: &mut Criterion<CpuTime>) {
    let d = detectors();
    let records = corpus();
    let whole: Vec<u8> = records.concat();
    if let Ok(path) = std::env::var("DUMP_CORPUS") {
        let _ = std::fs::write(path, &whole);
    }
    if let Ok(name) = std::env::var("DETECTORS_RUN") {
        profile_run(&d, &records, &whole, &name);
    }
    let found = (
        known_values(&d, &whole),
        patterns(&d, &whole),
        keys(&d, &whole),
        pipeline(&d, &whole),
    );
    eprintln!(
        "detectors: {} bytes in {} records; matches: known {}, patterns {}, keys {}; \
         pipeline identifiers {}",
        whole.len(),
        records.len(),
        found.0,
        found.1,
        found.2,
        found.3,
    );
    assert_eq!(found, EXPECTED, "the detectors' findings changed");
    let bytes = Throughput::Bytes(whole.len() as u64);
    type Run = fn(&Detectors, &[u8]) -> usize;
    let singles: [(&str, Run); 3] = [
        ("known_values", known_values),
        ("patterns", patterns),
        ("keys", keys),
    ];
    for (name, run) in singles {
        let mut group = c.benchmark_group(name);
        group.throughput(bytes.clone());
        group.bench_function("mixed_4mib", |b| b.iter(|| run(&d, black_box(&whole))));
        group.finish();
    }
    let mut group = c.benchmark_group("pipeline");
    group.throughput(bytes);
    group.bench_function("one_message", |b| {
        b.iter(|| pipeline(&d, black_box(&whole)))
    });
    group.bench_function("per_record", |b| b.iter(|| each_alone(&d, &records)));
    group.finish();

    // Each line its own message, as the proxy scans a URL and each header
    // line: per-message set-up counts most here (half the lines are under
    // 80 bytes).
    let mut group = c.benchmark_group("pipeline");
    let lines = lines(&whole);
    group.throughput(Throughput::Bytes(
        lines.iter().map(|l| l.len() as u64).sum(),
    ));
    group.bench_function("per_line", |b| b.iter(|| each_alone(&d, &lines)));
    group.finish();

    // A binary body (an encrypted upload, a download): read as a body, so
    // only the known-value search runs over it.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let noise: Vec<u8> = (0..CORPUS_LEN).map(|_| rng.next() as u8).collect();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Bytes(noise.len() as u64));
    group.bench_function("binary_body", |b| {
        b.iter(|| {
            let mut scan = MessageScan::body(&d, Vec::new());
            for piece in black_box(&noise).chunks(CHUNK) {
                scan.feed(piece);
            }
            scan.finish().len()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
