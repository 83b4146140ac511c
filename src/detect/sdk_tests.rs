//! Tests for the SDK catalogue: the built-in data, matching, and the errors
//! bad data produces. Most cases are text tables, one case per line.

use super::*;
use std::path::Path;

fn embedded() -> SdkCatalogue {
    match SdkCatalogue::from_toml(EMBEDDED_TEXT, EMBEDDED_ORIGIN) {
        Ok(catalogue) => catalogue,
        Err(err) => panic!("built-in catalogue rejected: {err}"),
    }
}

fn name_of<'a>(catalogue: &'a SdkCatalogue, host: &str, path: &str) -> Option<&'a str> {
    catalogue.lookup(host, path).map(|sdk| sdk.name.as_str())
}

/// Checks `host path expected name` rows; `-` as the name means no SDK.
fn check_lookups(catalogue: &SdkCatalogue, table: &str) {
    for row in table.lines().map(str::trim).filter(|row| !row.is_empty()) {
        let mut columns = row.splitn(3, ' ');
        let mut next = || columns.next().unwrap_or_default();
        let (host, path, name) = (next(), next(), next());
        let expected = (name != "-").then_some(name);
        assert_eq!(name_of(catalogue, host, path), expected, "{row}");
    }
}

/// The error message `text` produces, as origin `test.toml`.
fn error_of(text: &str) -> String {
    match SdkCatalogue::from_toml(text, "test.toml") {
        Ok(_) => panic!("accepted bad data:\n{text}"),
        Err(err) => err.to_string(),
    }
}

/// Asserts that `text` is rejected with a message that starts with `at`
/// and contains `fragment`.
fn assert_rejected(text: &str, at: &str, fragment: &str) {
    let message = error_of(text);
    assert!(message.starts_with(at), "{message}");
    assert!(message.contains(fragment), "{message} lacks {fragment}");
}

/// A five-line `[[sdk]]` entry; `domains` is the inside of the list.
fn entry(name: &str, domains: &str) -> String {
    format!(
        "[[sdk]]\nname = \"{name}\"\nvendor = \"V\"\ncategory = [\"analytics\"]\ndomains = [{domains}]\n"
    )
}

#[test]
fn embedded_catalogue_loads_with_at_least_150_entries() {
    let catalogue = embedded();
    assert!(catalogue.len() >= 150, "only {} entries", catalogue.len());
    assert_eq!(SdkCatalogue::embedded().len(), catalogue.len());
    assert!(!catalogue.is_empty());
}

#[test]
fn every_embedded_entry_cites_its_source_and_points_at_its_header() {
    let lines: Vec<&str> = EMBEDDED_TEXT.lines().collect();
    for sdk in embedded().iter() {
        let (origin, line) = sdk.defined_at();
        assert_eq!(origin, EMBEDDED_ORIGIN);
        assert_eq!(lines.get(line - 1), Some(&"[[sdk]]"), "{}", sdk.name);
        let comments = lines[..line - 1]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#'));
        let mut sources = comments.filter(|l| l.starts_with("# source: "));
        let cited = sources.any(|l| l.contains("(verification "));
        assert!(cited, "{} has no `# source:` line", sdk.name);
        assert!(sdk.region.is_some(), "{} has no region", sdk.name);
    }
}

const REPRESENTATIVE: &str = "
    ulogs.umeng.com /unify_logs Umeng+ Analytics
    msg.umengcloud.com / Umeng+ Analytics
    umengacs.m.taobao.com / Umeng+ Analytics
    log.umsns.com / Umeng+ U-Share
    s.jpush.cn / JPush
    sdk.open.phone.igexin.com /api.php Getui Push
    sdk.open.talk.getui.net / Getui Push
    mi.gdt.qq.com /gdt_mview.fcg Tencent GDT (Youlianghui)
    sdk.e.qq.com / Tencent GDT (Youlianghui)
    pgdt.gtimg.cn / Tencent GDT (Youlianghui)
    pingma.qq.com /mstat/report Tencent MTA
    ios.bugly.qq.com / Tencent Bugly
    openmobile.qq.com /v3/user/get_info QQ Connect
    api.weixin.qq.com /sns/userinfo WeChat Open Platform
    hmma.baidu.com /app.gif Baidu Mobile Statistics
    hmma.baidu.com /mini.gif?v=1 Baidu Mini Program Statistics
    loc.map.baidu.com /sdk.php Baidu Location SDK
    api.map.baidu.com / Baidu Maps SDK
    api-access.pangolin-sdk-toutiao.com /api/ad/union/sdk/get_ads/ Pangle (CSJ)
    abtest-ch.snssdk.com / Volcengine A/B Testing
    log.snssdk.com /service/2/app_log/ ByteDance AppLog
    open.e.kuaishou.com /rest/e/v3/open/univ Kuaishou Ads (Kuaishou Union)
    abc.datasink.sensorsdata.cn /sa?project=prod Sensors Analytics
    napi.growingio.com /v3/projects/x/collect GrowingIO
    tdsdk.xdrig.com / TalkingData
    fp-it.fengkongcloud.com /deviceprofile/v4 Shumei Device Fingerprint
    sgfp.tongdun.net /android3_8/profile.json Tongdun BlackBox
    onepass.geetest.com /get_config GeeTest OnePass
    api.geetest.com / GeeTest CAPTCHA
    log1.cmpassport.com / China Mobile Number Verification
    resolver.msg.xiaomi.net /psc/?t=a Xiaomi MiPush
    metrics.data.hicloud.com / Huawei HiAnalytics
    grs.hicloud.com / Huawei HMS Core
    httpdns.push.heytapmobi.com / OPPO Push (HeyTap)
    adx.ads.heytapmobi.com / OPPO Ads (HeyTap)
    mobilegw.alipay.com /mgw.htm Alipay SDK
    app-measurement.com /a Google Analytics for Firebase
    firebaselogging-pa.googleapis.com / Google Analytics for Firebase
    e.crashlytics.com / Firebase Crashlytics
    googleads.g.doubleclick.net /mads/gma Google DoubleClick
    graph.facebook.com /v18.0/123/activities Facebook SDK
    t.appsflyer.com / AppsFlyer
    app.adjust.com /session Adjust
    api2.branch.io /v1/open Branch
    o123.ingest.sentry.io /api/1/envelope/ Sentry
    api2.amplitude.com /2/httpapi Amplitude
    a.applovin.com / AppLovin MAX
    config.unityads.unity3d.com / Unity Ads
    cdp.cloud.unity3d.com / Unity Analytics
    logs.ironsrc.mobi / ironSource
";

#[test]
fn representative_hosts_resolve_to_their_sdk() {
    check_lookups(&embedded(), REPRESENTATIVE);
}

/// First-party platform parents of host-level entries, look-alikes, IPs.
const NOBODY: &str = "
    qq.com / -
    www.qq.com / -
    weixin.qq.com / -
    baidu.com / -
    www.baidu.com / -
    taobao.com / -
    m.taobao.com / -
    aliyuncs.com / -
    googleapis.com / -
    www.googleapis.com / -
    xiaomi.com / -
    weibo.com / -
    unity3d.com / -
    yandex.com / -
    vivo.com.cn / -
    kuaishou.com / -
    example.com / -
    notumeng.com / -
    umeng.com.example.org / -
    com / -
    . / -
    127.0.0.1 / -
    127.0.0.1:8080 / -
    [::1]:443 / -
    ::1 / -
    [2001:db8::1]:443 / -
";

#[test]
fn first_party_parents_and_lookalikes_match_nothing() {
    let catalogue = embedded();
    check_lookups(&catalogue, NOBODY);
    assert_eq!(name_of(&catalogue, "", "/"), None);
}

#[test]
fn hosts_ignore_case_port_and_trailing_dot() {
    let catalogue = embedded();
    let table = "
        ULOGS.Umeng.COM / Umeng+ Analytics
        ulogs.umeng.com. / Umeng+ Analytics
        ulogs.umeng.com:443 / Umeng+ Analytics
        ULOGS.UMENG.COM.:8080 / Umeng+ Analytics
    ";
    check_lookups(&catalogue, table);
    let padded = name_of(&catalogue, " ulogs.umeng.com ", "/");
    assert_eq!(padded, Some("Umeng+ Analytics"));
}

#[test]
fn every_claim_in_the_data_resolves_to_its_owner() {
    let catalogue = embedded();
    for sdk in catalogue.iter() {
        let path = sdk.paths.first().map_or("/", String::as_str);
        for domain in &sdk.domains {
            let found = name_of(&catalogue, domain, path);
            assert_eq!(found, Some(sdk.name.as_str()), "{domain}{path}");
        }
    }
}

/// The research table the data was built from, when this checkout has it.
#[test]
fn every_reference_domain_is_claimed() {
    let tsv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/sdk-endpoints.tsv");
    let Ok(text) = std::fs::read_to_string(&tsv) else {
        eprintln!("skipped: {} is not in this checkout", tsv.display());
        return;
    };
    let catalogue = embedded();
    let mut missing = Vec::new();
    for row in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let domain = row.split('\t').next().unwrap_or_default();
        let claimed = catalogue
            .iter()
            .any(|s| s.domains.iter().any(|d| d == domain));
        if !claimed || catalogue.lookup(domain, "/").is_none() {
            missing.push(domain.to_string());
        }
    }
    assert!(missing.is_empty(), "unclaimed: {missing:?}");
}

const FIXTURE: &str = r#"
[[sdk]]
name = "Parent"
vendor = "Vendor P"
category = ["analytics"]
domains = ["example.org"]

[[sdk]]
name = "Child"
vendor = "Vendor C"
category = ["advertising", "analytics"]
domains = ["ads.example.org"]

[[sdk]]
name = "Report Path"
vendor = "Vendor C"
category = ["attribution"]
domains = ["ads.example.org"]
paths = ["/report", "/report/v2"]

[[sdk]]
name = "Push Only"
vendor = "Vendor Q"
category = ["push"]
domains = ["push.example.org"]
paths = ["/v1/push"]

[[sdk]]
name = "Anywhere"
vendor = "Vendor S"
category = ["analytics"]
domains = ["sink.example.net"]
path_anywhere = ["/sa?project="]

[[sdk]]
name = "Wildcard"
vendor = "Vendor G"
category = ["analytics"]
path_anywhere = ["/v3/projects/*/collect"]
"#;

fn fixture() -> SdkCatalogue {
    match SdkCatalogue::from_toml(FIXTURE, "fixture.toml") {
        Ok(catalogue) => catalogue,
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn longest_suffix_wins_at_label_boundaries() {
    let table = "
        example.org / Parent
        www.example.org / Parent
        ads.example.org / Child
        x.y.ads.example.org / Child
        badexample.org / -
        example.org.evil.test / -
    ";
    check_lookups(&fixture(), table);
}

#[test]
fn path_restricted_entries_need_their_prefix() {
    let table = "
        ads.example.org /report?id=1 Report Path
        ads.example.org /report/v2/x Report Path
        cdn.ads.example.org /report Report Path
        ads.example.org /Report Child
        push.example.org /v1/push/register Push Only
        push.example.org /status Parent
    ";
    // The last row: no path fits at push.example.org, so the walk goes on
    // to the parent domain.
    check_lookups(&fixture(), table);
    assert_eq!(name_of(&fixture(), "ads.example.org", ""), Some("Child"));
}

#[test]
fn path_anywhere_applies_on_any_host_after_domains() {
    let table = "
        analytics.customer.test /sa?project=prod Anywhere
        10.0.0.7:8106 /sa?project=default Anywhere
        sink.example.net /anything Anywhere
        customer.test /sa -
        customer.test /api/sa?project=x -
        ads.example.org /sa?project=x Child
    ";
    // The last row: a matching domain entry takes precedence.
    check_lookups(&fixture(), table);
}

#[test]
fn wildcard_stands_for_one_non_empty_segment() {
    let table = "
        gio.customer.test /v3/projects/0a1b2c/collect?stm=1 Wildcard
        gio.customer.test /v3/projects/0a1b2c/collect Wildcard
        gio.customer.test /v3/projects//collect -
        gio.customer.test /v3/projects/a/b/collect -
        gio.customer.test /v3/projects/a?x=/collect -
    ";
    check_lookups(&fixture(), table);
}

#[test]
fn info_reports_the_primary_category() {
    let info = fixture().find_by_name("child").map(|sdk| sdk.info());
    let expected = SdkInfo {
        name: "Child".into(),
        vendor: "Vendor C".into(),
        category: "advertising".into(),
    };
    let json = serde_json::to_value(&expected).map(|v| v.to_string());
    assert_eq!(info, Some(expected));
    let want = r#"{"category":"advertising","name":"Child","vendor":"Vendor C"}"#;
    assert_eq!(json.ok().as_deref(), Some(want));
}

#[test]
fn find_by_name_matches_name_then_vendor_ignoring_case() {
    let catalogue = embedded();
    let name = |query: &str| catalogue.find_by_name(query).map(|s| s.name.as_str());
    assert_eq!(name("umeng+ analytics"), Some("Umeng+ Analytics"));
    assert_eq!(name("  APPSFLYER "), Some("AppsFlyer"));
    assert_eq!(name("tencent"), Some("Tencent Bugly"));
    assert_eq!(name("no such sdk"), None);
    let fixture = fixture();
    let by_vendor = fixture.find_by_name("VENDOR C").map(|s| s.name.as_str());
    assert_eq!(by_vendor, Some("Child"));
}

/// `fields => fragment`: an inline entry named "A" with those fields (so
/// its line is 1) and a fragment of the error it must produce.
const BAD_ENTRIES: &str = r#"
    vendor = "V", category = ["push"] => empty domains
    vendor = "V", category = [], domains = ["a.com"] => no category
    vendor = " ", category = ["push"], domains = ["a.com"] => vendor is missing or empty
    category = ["push"], domains = ["a.com"] => vendor is missing or empty
    vendor = "V", category = ["push", "push"], domains = ["a.com"] => "push" is listed twice
    vendor = "V", category = ["push"], region = "CN", domains = ["a.com"] => region "CN"
    vendor = "V", category = ["push"], domains = ["a.com"], paths = ["x"] => must start with '/'
    vendor = "V", category = ["push"], path_anywhere = ["/a*b"] => '*' must be a whole one
    vendor = "V", category = ["push"], path_anywhere = ["/x#y"] => fragments never reach
    vendor = "V", category = ["push"], paths = ["/a"], path_anywhere = ["/b"] => no domains
    vendor = "V", category = ["push"], domains = ["a.com"], paths = ["/a", "/a"] => listed twice
"#;

#[test]
fn bad_entries_are_reported_at_their_header_line() {
    let head = "# one\n\n[[sdk]]\nname = \"A\"\nvendor = \"V\"\n";
    let unknown = format!("{head}category = [\"tracking\"]\ndomains = [\"a.com\"]\n");
    let at = "test.toml:3: sdk \"A\": unknown category \"tracking\"";
    assert_rejected(
        &unknown,
        at,
        "(use one of: analytics, advertising, attribution",
    );
    for row in BAD_ENTRIES
        .lines()
        .map(str::trim)
        .filter(|row| !row.is_empty())
    {
        let (fields, fragment) = row.split_once(" => ").unwrap_or((row, ""));
        let text = format!("sdk = [{{ name = \"A\", {fields} }}]\n");
        assert_rejected(&text, "test.toml:1: sdk \"A\": ", fragment);
    }
}

#[test]
fn bad_domains_name_the_problem() {
    let table = "
        https://a.com has a scheme
        a.com/collect has a path
        Umeng.com write it in lowercase
        a.com:443 has a port
        *.a.com has a wildcard
        .a.com empty label
        a..com empty label
        a\tcom may only use
        10.0.0.1 is an IP address
        localhost is a single label
    ";
    for row in table.lines().map(str::trim).filter(|row| !row.is_empty()) {
        let (domain, problem) = row.split_once(' ').unwrap_or((row, ""));
        let text = format!("\n{}", entry("A", &format!("\"{domain}\"")));
        let at = format!("test.toml:2: sdk \"A\": domain \"{domain}\" ");
        assert_rejected(&text, &at, problem);
    }
    let twice = entry("A", "\"a.com\", \"a.com\"");
    assert_rejected(&twice, "test.toml:1:", "\"a.com\" is listed twice");
}

#[test]
fn toml_and_schema_errors_cite_the_line() {
    let head = "[[sdk]]\nname = \"A\"\nvendor = \"V\"\n";
    let unknown_field = format!("{head}category = [\"push\"]\ndomain = [\"a.com\"]\n");
    assert_rejected(&unknown_field, "test.toml:5:", "unknown field `domain`");
    let wrong_type = format!("{head}category = \"push\"\ndomains = [\"a.com\"]\n");
    assert_rejected(&wrong_type, "test.toml:4:", "invalid type");
    assert_rejected("[[sdk]]\nname = \"A\nvendor = \"V\"\n", "test.toml:2:", "");
    assert_rejected("[[sdk]]\nname = 3\n", "test.toml:2:", "invalid type");
}

#[test]
fn duplicate_names_and_unresolvable_claims_are_rejected() {
    let (a, b) = (entry("A", "\"a.com\""), entry("B", "\"a.com\""));
    let dup = format!("{a}\n{}", entry("a", "\"b.com\""));
    let at = "test.toml:7: sdk \"a\": duplicate name";
    assert_rejected(&dup, at, "already used at test.toml:1 ");

    let clash = format!("{a}\n{}", entry("B", "\"x.com\", \"a.com\""));
    let at = "test.toml:7: sdk \"B\": domain \"a.com\" is already claimed";
    assert_rejected(
        &clash,
        at,
        "by \"A\" (test.toml:1); give one of them `paths`",
    );

    let same_path = format!("{a}paths = [\"/p\"]\n\n{b}paths = [\"/p\"]\n");
    assert_rejected(
        &same_path,
        "test.toml:8:",
        "domain \"a.com\" with path \"/p\"",
    );

    let pattern = r#"vendor = "V", category = ["push"], path_anywhere = ["/x"]"#;
    let twice = format!("sdk = [{{ name = \"A\", {pattern} }},\n{{ name = \"B\", {pattern} }}]");
    assert_rejected(
        &twice,
        "test.toml:2:",
        "path_anywhere pattern \"/x\" is already",
    );

    // Paths tell two claims on one domain apart.
    let told_apart = format!("{a}\n{b}paths = [\"/p\"]\n");
    assert!(SdkCatalogue::from_toml(&told_apart, "test.toml").is_ok());
}

#[test]
fn text_without_sdk_tables_is_an_empty_catalogue() {
    let rules = "[[rule]]\nid = \"imei\"\npattern = \"[0-9]{15}\"\n";
    let catalogue = SdkCatalogue::from_toml(rules, "rules.toml").map(|c| c.len());
    assert_eq!(catalogue.ok(), Some(0));
}

/// A temporary rules directory holding `files` (name, text).
fn rules_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("tempdir: {err}"),
    };
    for (name, text) in files {
        if let Err(err) = std::fs::write(dir.path().join(name), text) {
            panic!("writing {name}: {err}");
        }
    }
    dir
}

fn load_error(dir: &Path) -> String {
    match SdkCatalogue::load(&[dir.to_path_buf()]) {
        Ok(_) => panic!("accepted {}", dir.display()),
        Err(err) => err.to_string(),
    }
}

#[test]
fn user_dirs_add_entries_and_override_by_name() {
    let custom = format!(
        "{}\n{}",
        entry("umeng+ analytics", "\"umeng.example\""),
        entry("In-House Tracker", "\"tracker.example\"")
    );
    let dir = rules_dir(&[
        ("identifiers.toml", "[[rule]]\nid = \"imei\"\n"),
        ("notes.md", "not toml [[sdk]]"),
        ("sdks.toml", &custom),
    ]);
    let catalogue = match SdkCatalogue::load(&[dir.path().to_path_buf()]) {
        Ok(catalogue) => catalogue,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(catalogue.len(), embedded().len() + 1);
    let table = "
        x.umeng.example / umeng+ analytics
        ulogs.umeng.com / -
        tracker.example / In-House Tracker
        t.appsflyer.com / AppsFlyer
    ";
    // The second row: the replaced entry's domains went with it.
    check_lookups(&catalogue, table);
    let found = catalogue.find_by_name("in-house tracker");
    assert_eq!(found.map(|s| s.defined_at().1), Some(7));
}

#[test]
fn user_dir_errors_name_the_file() {
    let other = format!("\n{}", entry("MINE", "\"other.example\""));
    let dir = rules_dir(&[
        ("a.toml", &entry("Mine", "\"mine.example\"")),
        ("b.toml", &other),
    ]);
    let message = load_error(dir.path());
    assert!(
        message.contains("b.toml:2: sdk \"MINE\": duplicate name"),
        "{message}"
    );
    assert!(message.contains("a.toml:1"), "{message}");

    let dir = rules_dir(&[("clash.toml", &entry("Mine", "\"umeng.com\""))]);
    let message = load_error(dir.path());
    assert!(message.contains("clash.toml:1"), "{message}");
    assert!(
        message.contains("\"Umeng+ Analytics\" (detectors/sdks.toml:"),
        "{message}"
    );

    let dir = rules_dir(&[("broken.toml", "[[rule]]\nid = \n")]);
    assert!(load_error(dir.path()).contains("broken.toml:2:"));

    let message = load_error(&dir.path().join("no-such-dir"));
    assert!(
        message.starts_with("cannot read ") && message.contains("no-such-dir"),
        "{message}"
    );
}
