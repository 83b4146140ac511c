//! Tests for the SDK catalogue: the built-in data, matching, and the errors
//! bad data produces.

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

/// The error message `text` produces, as origin `test.toml`.
fn error_of(text: &str) -> String {
    match SdkCatalogue::from_toml(text, "test.toml") {
        Ok(_) => panic!("accepted bad data:\n{text}"),
        Err(err) => err.to_string(),
    }
}

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
        let cited = comments
            .filter(|l| l.starts_with("# source: "))
            .any(|l| l.contains("(verification "));
        assert!(cited, "{} has no `# source:` line", sdk.name);
        assert!(sdk.region.is_some(), "{} has no region", sdk.name);
    }
}

#[test]
fn representative_hosts_resolve_to_their_sdk() {
    let catalogue = embedded();
    let cases = [
        ("ulogs.umeng.com", "/unify_logs", "Umeng+ Analytics"),
        ("msg.umengcloud.com", "/", "Umeng+ Analytics"),
        ("umengacs.m.taobao.com", "/", "Umeng+ Analytics"),
        ("log.umsns.com", "/", "Umeng+ U-Share"),
        ("s.jpush.cn", "/", "JPush"),
        ("sdk.open.phone.igexin.com", "/api.php", "Getui Push"),
        ("sdk.open.talk.getui.net", "/", "Getui Push"),
        ("mi.gdt.qq.com", "/gdt_mview.fcg", "Tencent GDT (Youlianghui)"),
        ("sdk.e.qq.com", "/", "Tencent GDT (Youlianghui)"),
        ("pgdt.gtimg.cn", "/", "Tencent GDT (Youlianghui)"),
        ("pingma.qq.com", "/mstat/report", "Tencent MTA"),
        ("ios.bugly.qq.com", "/", "Tencent Bugly"),
        ("openmobile.qq.com", "/v3/user/get_info", "QQ Connect"),
        ("api.weixin.qq.com", "/sns/userinfo", "WeChat Open Platform"),
        ("hmma.baidu.com", "/app.gif", "Baidu Mobile Statistics"),
        ("hmma.baidu.com", "/mini.gif?v=1", "Baidu Mini Program Statistics"),
        ("loc.map.baidu.com", "/sdk.php", "Baidu Location SDK"),
        ("api.map.baidu.com", "/", "Baidu Maps SDK"),
        ("api-access.pangolin-sdk-toutiao.com", "/api/ad/union/sdk/get_ads/", "Pangle (CSJ)"),
        ("abtest-ch.snssdk.com", "/", "Volcengine A/B Testing"),
        ("log.snssdk.com", "/service/2/app_log/", "ByteDance AppLog"),
        ("open.e.kuaishou.com", "/rest/e/v3/open/univ", "Kuaishou Ads (Kuaishou Union)"),
        ("abc.datasink.sensorsdata.cn", "/sa?project=prod", "Sensors Analytics"),
        ("napi.growingio.com", "/v3/projects/x/collect", "GrowingIO"),
        ("tdsdk.xdrig.com", "/", "TalkingData"),
        ("fp-it.fengkongcloud.com", "/deviceprofile/v4", "Shumei Device Fingerprint"),
        ("sgfp.tongdun.net", "/android3_8/profile.json", "Tongdun BlackBox"),
        ("onepass.geetest.com", "/get_config", "GeeTest OnePass"),
        ("api.geetest.com", "/", "GeeTest CAPTCHA"),
        ("log1.cmpassport.com", "/", "China Mobile Number Verification"),
        ("resolver.msg.xiaomi.net", "/psc/?t=a", "Xiaomi MiPush"),
        ("metrics.data.hicloud.com", "/", "Huawei HiAnalytics"),
        ("grs.hicloud.com", "/", "Huawei HMS Core"),
        ("httpdns.push.heytapmobi.com", "/", "OPPO Push (HeyTap)"),
        ("adx.ads.heytapmobi.com", "/", "OPPO Ads (HeyTap)"),
        ("mobilegw.alipay.com", "/mgw.htm", "Alipay SDK"),
        ("app-measurement.com", "/a", "Google Analytics for Firebase"),
        ("firebaselogging-pa.googleapis.com", "/", "Google Analytics for Firebase"),
        ("e.crashlytics.com", "/", "Firebase Crashlytics"),
        ("googleads.g.doubleclick.net", "/mads/gma", "Google DoubleClick"),
        ("graph.facebook.com", "/v18.0/123/activities", "Facebook SDK"),
        ("t.appsflyer.com", "/", "AppsFlyer"),
        ("app.adjust.com", "/session", "Adjust"),
        ("api2.branch.io", "/v1/open", "Branch"),
        ("o123.ingest.sentry.io", "/api/1/envelope/", "Sentry"),
        ("api2.amplitude.com", "/2/httpapi", "Amplitude"),
        ("a.applovin.com", "/", "AppLovin MAX"),
        ("config.unityads.unity3d.com", "/", "Unity Ads"),
        ("cdp.cloud.unity3d.com", "/", "Unity Analytics"),
        ("logs.ironsrc.mobi", "/", "ironSource"),
    ];
    for (host, path, expected) in cases {
        assert_eq!(name_of(&catalogue, host, path), Some(expected), "{host}{path}");
    }
}

#[test]
fn first_party_parents_and_lookalikes_match_nothing() {
    let catalogue = embedded();
    let hosts = [
        "qq.com",
        "www.qq.com",
        "weixin.qq.com",
        "baidu.com",
        "www.baidu.com",
        "taobao.com",
        "m.taobao.com",
        "aliyuncs.com",
        "googleapis.com",
        "www.googleapis.com",
        "xiaomi.com",
        "weibo.com",
        "unity3d.com",
        "yandex.com",
        "vivo.com.cn",
        "kuaishou.com",
        "example.com",
        "notumeng.com",
        "umeng.com.example.org",
        "com",
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]:443",
        "::1",
        "",
        ".",
    ];
    for host in hosts {
        assert_eq!(name_of(&catalogue, host, "/"), None, "{host:?}");
    }
}

#[test]
fn every_claim_in_the_data_resolves_to_its_owner() {
    let catalogue = embedded();
    for sdk in catalogue.iter() {
        let path = sdk.paths.first().map_or("/", String::as_str);
        for domain in &sdk.domains {
            let found = catalogue.lookup(domain, path).map(|s| s.name.as_str());
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
        let claimed = catalogue.iter().any(|s| s.domains.iter().any(|d| d == domain));
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
    let c = fixture();
    assert_eq!(name_of(&c, "example.org", "/"), Some("Parent"));
    assert_eq!(name_of(&c, "www.example.org", "/"), Some("Parent"));
    assert_eq!(name_of(&c, "ads.example.org", "/"), Some("Child"));
    assert_eq!(name_of(&c, "x.y.ads.example.org", "/"), Some("Child"));
    assert_eq!(name_of(&c, "badexample.org", "/"), None);
    assert_eq!(name_of(&c, "example.org.evil.test", "/"), None);
}

#[test]
fn path_restricted_entries_need_their_prefix() {
    let c = fixture();
    assert_eq!(name_of(&c, "ads.example.org", "/report?id=1"), Some("Report Path"));
    assert_eq!(name_of(&c, "ads.example.org", "/report/v2/x"), Some("Report Path"));
    assert_eq!(name_of(&c, "cdn.ads.example.org", "/report"), Some("Report Path"));
    assert_eq!(name_of(&c, "ads.example.org", "/Report"), Some("Child"));
    assert_eq!(name_of(&c, "ads.example.org", ""), Some("Child"));
    assert_eq!(name_of(&c, "push.example.org", "/v1/push/register"), Some("Push Only"));
    // No path match at this suffix: the walk continues to the parent.
    assert_eq!(name_of(&c, "push.example.org", "/status"), Some("Parent"));
}

#[test]
fn path_anywhere_applies_on_any_host_after_domains() {
    let c = fixture();
    assert_eq!(name_of(&c, "analytics.customer.test", "/sa?project=prod"), Some("Anywhere"));
    assert_eq!(name_of(&c, "10.0.0.7:8106", "/sa?project=default"), Some("Anywhere"));
    assert_eq!(name_of(&c, "sink.example.net", "/anything"), Some("Anywhere"));
    assert_eq!(name_of(&c, "customer.test", "/sa"), None);
    assert_eq!(name_of(&c, "customer.test", "/api/sa?project=x"), None);
    // A domain entry that matches takes precedence.
    assert_eq!(name_of(&c, "ads.example.org", "/sa?project=x"), Some("Child"));
}

#[test]
fn wildcard_stands_for_one_non_empty_segment() {
    let c = fixture();
    let name = |path| name_of(&c, "gio.customer.test", path);
    assert_eq!(name("/v3/projects/0a1b2c/collect?stm=1"), Some("Wildcard"));
    assert_eq!(name("/v3/projects/0a1b2c/collect"), Some("Wildcard"));
    assert_eq!(name("/v3/projects//collect"), None);
    assert_eq!(name("/v3/projects/a/b/collect"), None);
    assert_eq!(name("/v3/projects/a?x=/collect"), None);
}

#[test]
fn hosts_ignore_case_port_and_trailing_dot() {
    let c = embedded();
    for host in [
        "ULOGS.Umeng.COM",
        "ulogs.umeng.com.",
        "ulogs.umeng.com:443",
        "ULOGS.UMENG.COM.:8080",
        " ulogs.umeng.com ",
    ] {
        assert_eq!(name_of(&c, host, "/"), Some("Umeng+ Analytics"), "{host:?}");
    }
    assert_eq!(name_of(&c, "[2001:db8::1]:443", "/"), None);
    assert_eq!(name_of(&c, "2001:db8::1", "/"), None);
}

#[test]
fn info_reports_the_primary_category() {
    let c = fixture();
    let sdk = c.find_by_name("child").map(Sdk::info);
    let expected = SdkInfo {
        name: "Child".into(),
        vendor: "Vendor C".into(),
        category: "advertising".into(),
    };
    assert_eq!(sdk, Some(expected.clone()));
    let json = serde_json::to_value(&expected).map(|v| v.to_string());
    assert_eq!(
        json.ok().as_deref(),
        Some(r#"{"category":"advertising","name":"Child","vendor":"Vendor C"}"#)
    );
}

#[test]
fn find_by_name_matches_name_then_vendor_ignoring_case() {
    let c = embedded();
    let name = |q: &str| c.find_by_name(q).map(|s| s.name.as_str());
    assert_eq!(name("umeng+ analytics"), Some("Umeng+ Analytics"));
    assert_eq!(name("  APPSFLYER "), Some("AppsFlyer"));
    assert_eq!(name("tencent"), Some("Tencent Bugly"));
    assert_eq!(name("no such sdk"), None);
    let f = fixture();
    assert_eq!(f.find_by_name("VENDOR C").map(|s| s.name.as_str()), Some("Child"));
}

#[test]
fn bad_entries_are_reported_at_their_header_line() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "# one\n\n[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = [\"tracking\"]\ndomains = [\"a.com\"]\n",
            "test.toml:3:",
            &["\"A\"", "unknown category \"tracking\"", "analytics, advertising"],
        ),
        (
            "[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = [\"push\"]\n",
            "test.toml:1:",
            &["empty domains"],
        ),
        (
            "[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = []\ndomains = [\"a.com\"]\n",
            "test.toml:1:",
            &["no category"],
        ),
        (
            "[[sdk]]\nname = \"A\"\nvendor = \" \"\ncategory = [\"push\"]\ndomains = [\"a.com\"]\n",
            "test.toml:1:",
            &["vendor is empty"],
        ),
        (
            "[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = [\"push\"]\nregion = \"CN\"\ndomains = [\"a.com\"]\n",
            "test.toml:1:",
            &["region \"CN\""],
        ),
        (
            "[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = [\"push\"]\ndomains = [\"a.com\"]\npaths = [\"report\"]\n",
            "test.toml:1:",
            &["path \"report\"", "must start with '/'"],
        ),
        (
            "[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = [\"push\"]\npath_anywhere = [\"/a*b\"]\n",
            "test.toml:1:",
            &["path \"/a*b\"", "whole path segment"],
        ),
        (
            "[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = [\"push\"]\npaths = [\"/a\"]\npath_anywhere = [\"/b\"]\n",
            "test.toml:1:",
            &["no domains"],
        ),
    ];
    for (text, at, fragments) in cases {
        let message = error_of(text);
        assert!(message.starts_with(at), "{message}");
        for fragment in *fragments {
            assert!(message.contains(fragment), "{message} lacks {fragment}");
        }
    }
}

#[test]
fn bad_domains_name_the_problem() {
    let cases = [
        ("https://a.com", "scheme"),
        ("a.com/collect", "has a path"),
        ("Umeng.com", "lowercase"),
        ("a.com:443", "port"),
        ("*.a.com", "wildcard"),
        (".a.com", "empty label"),
        ("a..com", "empty label"),
        ("a com", "may only use"),
        ("10.0.0.1", "IP address"),
        ("localhost", "single label"),
    ];
    for (domain, problem) in cases {
        let text = format!("\n{}", entry("A", &format!("\"{domain}\"")));
        let message = error_of(&text);
        assert!(message.starts_with("test.toml:2: sdk \"A\": domain"), "{message}");
        assert!(message.contains(problem), "{domain}: {message}");
    }
    let twice = error_of(&entry("A", "\"a.com\", \"a.com\""));
    assert!(twice.contains("listed twice"), "{twice}");
}

#[test]
fn toml_and_schema_errors_cite_the_line() {
    let unknown_field = "[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = [\"push\"]\ndomain = [\"a.com\"]\n";
    let message = error_of(unknown_field);
    assert!(message.starts_with("test.toml:5:"), "{message}");
    assert!(message.contains("unknown field `domain`"), "{message}");

    let syntax = "[[sdk]]\nname = \"A\nvendor = \"V\"\n";
    assert!(error_of(syntax).starts_with("test.toml:2:"), "{}", error_of(syntax));

    let missing = "\n\n[[sdk]]\nname = \"A\"\ncategory = [\"push\"]\ndomains = [\"a.com\"]\n";
    let message = error_of(missing);
    assert!(message.starts_with("test.toml:3:"), "{message}");
    assert!(message.contains("vendor"), "{message}");

    let wrong_type = "[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = \"push\"\ndomains = [\"a.com\"]\n";
    assert!(error_of(wrong_type).starts_with("test.toml:4:"));
}

#[test]
fn duplicate_names_and_unresolvable_claims_are_rejected() {
    let dup = format!("{}\n{}", entry("Alpha", "\"a.com\""), entry("ALPHA", "\"b.com\""));
    let message = error_of(&dup);
    assert!(message.starts_with("test.toml:7: sdk \"ALPHA\": duplicate name"), "{message}");
    assert!(message.contains("already defined at test.toml:1"), "{message}");

    let clash = format!("{}\n{}", entry("Alpha", "\"a.com\""), entry("Beta", "\"x.com\", \"a.com\""));
    let message = error_of(&clash);
    assert!(message.starts_with("test.toml:7: sdk \"Beta\": domain \"a.com\""), "{message}");
    assert!(message.contains("already claimed by \"Alpha\" (test.toml:1)"), "{message}");

    let same_path = format!("{}paths = [\"/p\"]\n\n{}paths = [\"/p\"]\n", entry("A", "\"a.com\""), entry("B", "\"a.com\""));
    assert!(error_of(&same_path).contains("with path \"/p\""));

    let same_anywhere = "[[sdk]]\nname = \"A\"\nvendor = \"V\"\ncategory = [\"push\"]\npath_anywhere = [\"/x\"]\n\n[[sdk]]\nname = \"B\"\nvendor = \"V\"\ncategory = [\"push\"]\npath_anywhere = [\"/x\"]\n";
    assert!(error_of(same_anywhere).contains("path_anywhere pattern \"/x\""));

    // Paths tell two claims on one domain apart.
    let told_apart = format!("{}\n{}paths = [\"/p\"]\n", entry("A", "\"a.com\""), entry("B", "\"a.com\""));
    assert!(SdkCatalogue::from_toml(&told_apart, "test.toml").is_ok());
}

#[test]
fn text_without_sdk_tables_is_an_empty_catalogue() {
    let rules = "[[rule]]\nid = \"imei\"\npattern = \"[0-9]{15}\"\n";
    let catalogue = SdkCatalogue::from_toml(rules, "rules.toml").map(|c| c.len());
    assert_eq!(catalogue.ok(), Some(0));
}

fn write(dir: &Path, name: &str, text: &str) {
    if let Err(err) = std::fs::write(dir.join(name), text) {
        panic!("writing {name}: {err}");
    }
}

fn temp_dir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("tempdir: {err}"),
    }
}

#[test]
fn user_dirs_add_entries_and_override_by_name() {
    let dir = temp_dir();
    write(dir.path(), "identifiers.toml", "[[rule]]\nid = \"imei\"\n");
    write(dir.path(), "notes.md", "not toml [[sdk]]");
    let custom = format!(
        "{}\n{}",
        entry("umeng+ analytics", "\"umeng.example\""),
        entry("In-House Tracker", "\"tracker.example\"")
    );
    write(dir.path(), "sdks.toml", &custom);
    let catalogue = match SdkCatalogue::load(&[dir.path().to_path_buf()]) {
        Ok(catalogue) => catalogue,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(catalogue.len(), embedded().len() + 1);
    assert_eq!(name_of(&catalogue, "x.umeng.example", "/"), Some("umeng+ analytics"));
    // The replaced entry's domains are gone with it.
    assert_eq!(name_of(&catalogue, "ulogs.umeng.com", "/"), None);
    assert_eq!(name_of(&catalogue, "tracker.example", "/"), Some("In-House Tracker"));
    assert_eq!(name_of(&catalogue, "t.appsflyer.com", "/"), Some("AppsFlyer"));
    let origin = catalogue.find_by_name("in-house tracker").map(|s| s.defined_at().1);
    assert_eq!(origin, Some(7));
}

#[test]
fn user_dir_errors_name_the_file() {
    let dir = temp_dir();
    write(dir.path(), "a.toml", &entry("Mine", "\"mine.example\""));
    write(dir.path(), "b.toml", &format!("\n{}", entry("MINE", "\"other.example\"")));
    let message = SdkCatalogue::load(&[dir.path().to_path_buf()]).map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("b.toml:2: sdk \"MINE\": duplicate name"), "{message}");
    assert!(message.contains("a.toml:1"), "{message}");

    let dir = temp_dir();
    write(dir.path(), "clash.toml", &entry("Mine", "\"umeng.com\""));
    let message = SdkCatalogue::load(&[dir.path().to_path_buf()]).map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("clash.toml:1"), "{message}");
    assert!(message.contains("\"Umeng+ Analytics\" (detectors/sdks.toml:"), "{message}");

    let dir = temp_dir();
    write(dir.path(), "broken.toml", "[[rule]]\nid = \n");
    let message = SdkCatalogue::load(&[dir.path().to_path_buf()]).map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("broken.toml:2:"), "{message}");

    let missing = dir.path().join("no-such-dir");
    let message = SdkCatalogue::load(&[missing]).map(|_| ()).unwrap_err().to_string();
    assert!(message.starts_with("cannot read ") && message.contains("no-such-dir"), "{message}");
}
