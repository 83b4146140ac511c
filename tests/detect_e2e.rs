//! End-to-end detection: a scripted "app" sends requests shaped like real
//! SDK traffic through the real proxy in each consent phase, and the test
//! asserts the exact findings: identifiers, places, encodings, parties,
//! SDKs and violations. SDK host names resolve to the local origin through
//! the proxy's `--resolve` overrides, so nothing leaves the machine.

mod common;

use base64::Engine;
use common::{Harness, Options};
use leakscope::consent::ConsentPhase;
use leakscope::detect::finding::{DetectorKind, Finding, Party, Violation};
use leakscope::detect::inspector::PrivacySettings;
use md5::{Digest, Md5};
use std::io::Write;
use std::sync::Arc;

const PROFILE: &str = r#"
imei = "490154203237518"
imsi = "460001234567890"
android_id = "3f8a2c1be47d9a05"
adid = "38400000-8cf0-11bd-b23e-10b96e40000d"
oaid = "5f3c9a2e-7d41-4b8e-a6c2-1e9f0b7d3a64"
mac = "02:1a:11:f0:3c:77"
phone = "+86 138 0013 8000"
email = "tester@example.com"
location = { lat = 39.9088, lon = 116.3975 }
installed_apps = ["com.tencent.mm", "com.eg.android.AlipayGphone", "com.sina.weibo"]
"#;

const SDK_HOSTS: &[&str] = &[
    "t.appsflyer.com",
    "ulogs.umeng.com",
    "sdk.open.phone.igexin.com",
    "mi.gdt.qq.com",
    "api.shop-app.test",
    "cdn.shop-app.test",
];

struct App {
    h: Harness,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start() -> App {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("device.toml");
        std::fs::write(&profile, PROFILE).unwrap();
        let settings = PrivacySettings {
            profile: Some(profile),
            app_domains: vec!["shop-app.test".into()],
            ..Default::default()
        };
        let options = Options {
            privacy: Some(settings),
            hosts_at_origin: SDK_HOSTS.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        };
        let h = Harness::start_with(|_| {}, options).await;
        let client = h.client();
        App {
            h,
            client,
            _dir: dir,
        }
    }

    /// Sends a request and returns the findings of its flow, sorted.
    async fn send(&mut self, req: reqwest::RequestBuilder) -> Vec<Arc<Finding>> {
        req.send()
            .await
            .expect("request through the proxy")
            .bytes()
            .await
            .unwrap();
        let flow = self.h.next_flow().await;
        let mut findings = self.h.findings_of(flow.id);
        findings.sort_by(|a, b| (&a.identifier, &a.place).cmp(&(&b.identifier, &b.place)));
        findings
    }
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An analytics SDK's JSON batch upload, labelled gzip'd; `body` is
/// sent as given.
fn umeng_batch(client: &reqwest::Client, body: Vec<u8>) -> reqwest::RequestBuilder {
    client
        .post("http://ulogs.umeng.com/unify_logs")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// (identifier, where, encoding, detector) of each finding.
fn summary(findings: &[Arc<Finding>]) -> Vec<(String, String, String, DetectorKind)> {
    findings
        .iter()
        .map(|f| {
            (
                f.identifier.clone(),
                f.place.clone(),
                f.encoding.clone(),
                f.detector,
            )
        })
        .collect()
}

fn row(
    id: &str,
    place: &str,
    encoding: &str,
    detector: DetectorKind,
) -> (String, String, String, DetectorKind) {
    (id.into(), place.into(), encoding.into(), detector)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_traffic_in_each_phase_gives_the_exact_findings() {
    let mut app = App::start().await;
    use DetectorKind::Profile;

    // Pre-consent: an attribution SDK's install event, a form POST.
    let form = "af_timestamp=1700000000000&advertiserId=38400000-8cf0-11bd-b23e-10b96e40000d\
                &android_id=3f8a2c1be47d9a05&deviceType=Pixel%207&af_v=6.12.1";
    let findings = app
        .send(
            app.client
                .post("http://t.appsflyer.com/api/v6.12/androidevent?app_id=com.shop.app")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    assert_eq!(
        summary(&findings),
        vec![
            row("adid", "body", "plain", Profile),
            row("android_id", "body", "plain", Profile)
        ]
    );
    for f in &findings {
        assert_eq!(f.phase, ConsentPhase::PreConsent);
        assert_eq!(f.party, Party::Third);
        assert_eq!(f.sdk.as_ref().unwrap().name, "AppsFlyer");
        assert_eq!(
            f.violations,
            vec![Violation::PreConsent, Violation::ThirdParty]
        );
        assert_eq!(f.decoded_from, vec!["form"]);
        assert_eq!(
            f.url,
            "http://t.appsflyer.com/api/v6.12/androidevent?app_id=com.shop.app"
        );
    }

    // Consented: an analytics SDK's gzip'd JSON batch with a hashed IMEI.
    app.h.phases.switch(ConsentPhase::Consented);
    let batch = format!(
        r#"{{"header":{{"imei_md5":"{}","mac":"02:1A:11:F0:3C:77","os":"Android","ts":1700000000123}},"events":[{{"id":"launch","order":"202311281234567890"}}]}}"#,
        md5_hex("490154203237518")
    );
    let findings = app
        .send(umeng_batch(&app.client, gzip(batch.as_bytes())))
        .await;
    assert_eq!(
        summary(&findings),
        vec![
            row("imei", "body", "md5", Profile),
            row("mac", "body", "upper", Profile)
        ]
    );
    for f in &findings {
        assert_eq!(f.phase, ConsentPhase::Consented);
        assert_eq!(f.sdk.as_ref().unwrap().name, "Umeng+ Analytics");
        assert_eq!(f.violations, vec![Violation::ThirdParty]);
        assert_eq!(f.decoded_from, vec!["gzip", "json"]);
    }

    // Refused: a push SDK registration hiding gzip'd JSON in base64 in a form field.
    app.h.phases.switch(ConsentPhase::Refused);
    let inner = r#"{"imsi":"460001234567890","phone":"13800138000","cid":"a1b2c3"}"#;
    let payload = base64::engine::general_purpose::STANDARD.encode(gzip(inner.as_bytes()));
    let form = format!("action=register&appid=Xy7&data={}", urlencode(&payload));
    let findings = app
        .send(
            app.client
                .post("http://sdk.open.phone.igexin.com/api.php")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    let ids: Vec<_> = findings.iter().map(|f| f.identifier.as_str()).collect();
    assert_eq!(ids, vec!["imsi", "phone"]);
    for f in &findings {
        assert_eq!(f.detector, Profile);
        assert_eq!(f.place, "body");
        assert_eq!(
            f.decoded_from,
            vec!["form", "url", "base64", "gzip", "json"],
            "{f:?}"
        );
        assert_eq!(
            f.violations,
            vec![Violation::AfterRefusal, Violation::ThirdParty]
        );
        assert!(
            f.sdk.as_ref().unwrap().name.starts_with("Getui"),
            "{:?}",
            f.sdk
        );
    }

    // Background: an ad request with hashed identifiers in the query string.
    app.h.phases.switch(ConsentPhase::Background);
    let url = format!(
        "http://mi.gdt.qq.com/gdt_mview.fcg?adposcount=1&muidtype=1&muid={}&oaid_md5={}&t=1700000000",
        md5_hex("490154203237518"),
        md5_hex("5f3c9a2e-7d41-4b8e-a6c2-1e9f0b7d3a64")
    );
    let findings = app.send(app.client.get(&url)).await;
    assert_eq!(
        summary(&findings),
        vec![
            row("imei", "url", "md5", Profile),
            row("oaid", "url", "md5", Profile)
        ]
    );
    for f in &findings {
        assert_eq!(f.phase, ConsentPhase::Background);
        assert!(f.sdk.as_ref().unwrap().name.contains("GDT"), "{:?}", f.sdk);
        assert_eq!(f.violations, vec![Violation::ThirdParty]);
    }

    // First party, consented: the app's own login with the phone number.
    app.h.phases.switch(ConsentPhase::Consented);
    let findings = app
        .send(
            app.client
                .post("http://api.shop-app.test/v1/login")
                .header("content-type", "application/json")
                .body(r#"{"phone":"13800138000","password_sha1":"5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"}"#),
        )
        .await;
    assert_eq!(
        summary(&findings),
        vec![row("phone", "body", "national", Profile)]
    );
    assert_eq!(findings[0].party, Party::First);
    assert!(findings[0].sdk.is_none());
    assert!(findings[0].violations.is_empty());
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_traffic_gives_no_findings() {
    let mut app = App::start().await;
    let requests = vec![
        app.client.get(
            "http://cdn.shop-app.test/static/app.js?v=1700000000000&build=20231128&hash=9f86d081884c7d659a2feaa0c55ad015",
        ),
        app.client
            .post("http://api.shop-app.test/v1/orders")
            .header("content-type", "application/json")
            .header("x-request-id", "6f1c2e9a-0b7d-4c3e-9a1f-2b8d7e6c5a41")
            .body(
                r#"{"order_no":"202311281234567890","items":[{"sku":"A-1029","qty":2,"price":1999}],"ts":1700000000123,"trace":"4bf92f3577b34da6a3ce929d0e0e4736","coupon":"SAVE20"}"#,
            ),
        app.client
            .post("http://api.shop-app.test/v1/events")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("event=view&screen=home&duration_ms=15234&session=1700000000&lang=zh-CN&tz=Asia%2FShanghai"),
        app.client.get("http://cdn.shop-app.test/img/banner@2x.png?w=1080&h=1920"),
    ];
    for req in requests {
        let findings = app.send(req).await;
        assert!(
            findings.is_empty(),
            "clean traffic produced findings: {findings:#?}"
        );
    }
}

/// An SDK's encrypted upload (`application/octet-stream`, noise) through the
/// proxy: read by the profile search only. The device's IMEI inside it is
/// reported; a stranger's e-mail address (which the pattern would report
/// in text) and digit runs in the noise give nothing. The origin echoes the
/// body back, so the response is checked the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_bodies_give_profile_findings_only() {
    let mut app = App::start().await;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut body: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    for (at, what) in [
        (100_000, &b"imei=490154203237518&"[..]),
        (200_000, b"to=zhang.wei@mail.qq.com&"),
    ] {
        body.splice(at..at + what.len(), what.iter().copied());
    }
    let findings = app
        .send(
            app.client
                .post("http://t.appsflyer.com/echo")
                .header("content-type", "application/octet-stream")
                .body(body),
        )
        .await;
    let got: Vec<_> = findings
        .iter()
        .map(|f| (f.identifier.as_str(), f.place.as_str(), f.detector))
        .collect();
    assert_eq!(
        got,
        [
            ("imei", "body", DetectorKind::Profile),
            ("imei", "response-body", DetectorKind::Profile),
        ],
        "{findings:#?}"
    );
}

/// An SDK that labels a plain JSON batch `Content-Encoding: gzip` still
/// has it read: the body does not start like gzip, so it is scanned as
/// sent, and the finding does not claim a gzip layer it never had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_mislabelled_gzip_is_read_as_sent() {
    let mut app = App::start().await;
    let batch = format!(
        r#"{{"header":{{"imei_md5":"{}"}},"ev":"launch"}}"#,
        md5_hex("490154203237518")
    );
    let findings = app.send(umeng_batch(&app.client, batch.into_bytes())).await;
    assert_eq!(
        summary(&findings),
        vec![row("imei", "body", "md5", DetectorKind::Profile)]
    );
    assert_eq!(findings[0].decoded_from, vec!["json"]);
}
