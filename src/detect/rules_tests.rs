//! Tests for rule loading, error messages, key matching and placeholders.

use super::*;

const KINDS: &[&str] = &[
    "imei",
    "meid",
    "imsi",
    "iccid",
    "serial",
    "android_id",
    "adid",
    "oaid",
    "idfa",
    "idfv",
    "mac",
    "bt_mac",
    "ssid",
    "bssid",
    "phone",
    "email",
    "location",
    "installed_apps",
    "cn_resident_id",
    "bank_card",
];

fn err(text: &str) -> String {
    RuleSet::from_toml(text, "user.toml")
        .expect_err("rules should be refused")
        .to_string()
}

#[test]
fn embedded_rules_load_with_every_kind() {
    let rules = RuleSet::embedded();
    let ids: Vec<&str> = rules.kinds().iter().map(|k| k.id.as_str()).collect();
    for kind in KINDS {
        assert!(ids.contains(kind), "missing kind {kind}");
    }
    assert!(rules.kinds().iter().all(|k| !k.description.is_empty()));
    // `load` with no directories is the embedded set.
    let loaded = RuleSet::load(&[]).unwrap();
    assert_eq!(loaded.kinds().len(), rules.kinds().len());
}

#[test]
fn key_tokens_split_case_and_separators() {
    let cases: &[(&str, &[&str])] = &[
        ("deviceImei", &["device", "imei"]),
        ("deviceIMEIValue", &["device", "imei", "value"]),
        ("x-device-imei", &["x", "device", "imei"]),
        ("X_DEVICE_IMEI", &["x", "device", "imei"]),
        ("user.phone", &["user", "phone"]),
        ("wifi2Mac", &["wifi2", "mac"]),
        ("imei1", &["imei1"]),
        ("device[imei]", &["device", "imei"]),
        ("用户手机号", &["用户手机号"]),
        ("--", &[]),
        ("", &[]),
    ];
    for (key, want) in cases {
        assert_eq!(key_tokens(key), *want, "{key}");
    }
}

#[test]
fn kind_for_key_table() {
    let rules = RuleSet::embedded();
    let cases: &[(&str, Option<&str>)] = &[
        ("imei", Some("imei")),
        ("IMEI", Some("imei")),
        ("deviceImei", Some("imei")),
        ("device_imei", Some("imei")),
        ("x-device-imei", Some("imei")),
        ("X-Device-IMEI", Some("imei")),
        ("imei_1", Some("imei")),
        ("imei2", Some("imei")),
        ("imei_md5", Some("imei")),
        ("ime", Some("imei")),
        ("user.phone", Some("phone")),
        ("mobilePhone", Some("phone")),
        ("手机号", Some("phone")),
        ("wifiMac", Some("mac")),
        ("macAddress", Some("mac")),
        ("mc", Some("mac")),
        ("ap_mac", Some("bssid")),
        ("wifi_ap_mac", Some("bssid")),
        ("bssid", Some("bssid")),
        ("wifi_ssid", Some("ssid")),
        ("gaid", Some("adid")),
        ("googleAdId", Some("adid")),
        ("msa_oaid", Some("oaid")),
        ("android_id", Some("android_id")),
        ("AndroidID", Some("android_id")),
        ("sn", Some("serial")),
        ("sim_serial_number", Some("iccid")),
        ("device_sim_serial_number", Some("iccid")),
        ("id_card_no", Some("cn_resident_id")),
        ("card_no", Some("bank_card")),
        ("apps", Some("installed_apps")),
        ("applist", Some("installed_apps")),
        ("lat", Some("location")),
        ("user_lng", Some("location")),
        // not identifiers
        ("imei_count", None),
        ("phone_model", None),
        ("phoneModel", None),
        ("machine", None),
        ("macro", None),
        ("hmac", None),
        ("abc_mc", None),
        ("order_sn", None),
        ("default_ime", None),
        ("recommended_apps", None),
        ("aid", None),
        ("id", None),
        ("trace_id", None),
        ("IMEIValue", None),
        ("", None),
        ("---", None),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(k, want)| rules.kind_for_key(k) != *want)
        .map(|(k, want)| format!("{k:?}: got {:?}, want {want:?}", rules.kind_for_key(k)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn placeholders_table() {
    let rules = RuleSet::embedded();
    let cases: &[(&str, &str, bool)] = &[
        ("imei", "000000000000000", true),
        ("imei", "004999010640000", true),
        ("imei", "490154203237518", false),
        ("mac", "02:00:00:00:00:00", true),
        ("mac", "00:00:00:00:00:00", true),
        ("mac", "3c:5a:b4:01:02:03", false),
        ("adid", "00000000-0000-0000-0000-000000000000", true),
        ("serial", "unknown", true),
        ("serial", "UNKNOWN", true),
        ("serial", " \"unknown\" ", true),
        ("ssid", "\"<unknown ssid>\"", true),
        ("android_id", "9774d56d682e549c", true),
        ("location", "0.0", true),
        ("location", "4.9E-324", true),
        ("phone", "null", true),
        ("phone", "", true),
        ("phone", "  ", true),
        ("phone", "0", true),
        ("phone", "None", true),
        ("phone", "13800138000", false),
        // default checks apply to kinds nobody defined
        ("no_such_kind", "null", true),
        ("no_such_kind", "abc", false),
        // kind placeholders stay with their kind
        ("phone", "9774d56d682e549c", false),
        ("location", "北京市海淀区", false),
    ];
    for (kind, value, want) in cases {
        assert_eq!(rules.is_placeholder(kind, value), *want, "{kind} {value:?}");
    }
}

#[test]
fn key_values_are_filtered_by_kind() {
    let rules = RuleSet::embedded();
    let cases: &[(&str, &str, bool)] = &[
        ("mac", "3c:5a:b4:01:02:03", true),
        ("mac", "3c5ab4010203", true),
        // an HMAC under `mac`
        ("mac", "9e107d9d372bb6826bd81d3542a419d6", false),
        ("adid", "38400000-8cf0-11bd-b23e-10b96e40000d", true),
        ("adid", "123456", false),
        ("location", "39.9088", true),
        ("location", "en", false),
        ("location", "https://example.com/", false),
        ("phone", "1", false),
        ("phone", "13800138000", true),
        ("email", "a@qq.com", true),
        ("email", "yes", false),
        ("imei", "490154203237518", true),
        ("imei", "null", false),
        ("nope", "490154203237518", false),
    ];
    for (kind, value, want) in cases {
        assert_eq!(
            rules.accepts_key_value(kind, value),
            *want,
            "{kind} {value:?}"
        );
    }
    assert!(rules.is_deny_context("order_id"));
    assert!(rules.is_deny_context("createTimestamp"));
    assert!(rules.is_deny_context("orderNo"));
    assert!(!rules.is_deny_context("imei"));
    assert!(!rules.is_deny_context("data"));
}

#[test]
fn syntax_errors_cite_line_and_column() {
    let e = err("[[kind]]\nid = \"x\"\nkeys = [\"a\",\n");
    assert!(e.starts_with("user.toml:3:"), "{e}");
    let e = err("[[kind]]\nid = \"x\"\nkeyz = [\"a\"]\n");
    assert!(e.starts_with("user.toml:3:1:"), "{e}");
    assert!(e.contains("keyz"), "{e}");
    let e = err("[[kind]]\nid = \"x\"\nkeys = \"a\"\n");
    assert!(e.starts_with("user.toml:3:"), "{e}");
}

#[test]
fn unknown_validator_is_named_with_known_list() {
    let text = "[[kind]]\nid = \"ok\"\nkeys = [\"ok\"]\n\n[[kind]]\nid = \"imei\"\nkeys = [\"imei\"]\npattern = '[0-9]{15}'\nvalidator = \"lunh\"\n";
    let e = err(text);
    assert!(
        e.starts_with("user.toml:9: kind `imei`: unknown validator `lunh` (known: luhn, imei, "),
        "{e}"
    );
    assert!(e.contains("package_name"), "{e}");
}

#[test]
fn semantic_errors_cite_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"a\"]\npattern = '[0-9'\n",
            "user.toml:4: kind `a`: bad regex in `pattern`",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"a\"]\nvalue_pattern = '('\n",
            "user.toml:4: kind `a`: bad regex in `value_pattern`",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"a\"]\npattern = 'x'\nboundary = '[0-9'\n",
            "user.toml:5: kind `a`: bad regex in `boundary`",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"a\"]\n[[kind]]\nid = \"a\"\n",
            "user.toml:5: kind `a`: defined twice in this file (first at line 2)",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"imei\"]\n[[kind]]\nid = \"b\"\nkeys = [\"IMEI\"]\n",
            "user.toml:5: kind `b`: key `IMEI` already names kind `a` (user.toml:2)",
        ),
        (
            "[[kind]]\nid = \"a\"\npattern = 'x'\nneeds_key_context = true\n",
            "user.toml:3: kind `a`: needs_key_context is set but the kind has no keys",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"a\"]\npattern = 'x*'\n",
            "user.toml:4: kind `a`: pattern can match the empty string",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"a\"]\npattern = 'x'\nconfidence = \"sure\"\n",
            "user.toml:5: kind `a`: unknown confidence `sure`",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"a\"]\nvalidator = \"luhn\"\n",
            "user.toml:2: kind `a`: pattern settings given without a `pattern`",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"a\"]\npattern = 'x'\npair_group = \"g\"\nlist_min = 3\n",
            "user.toml:4: kind `a`: pair_group and list_min cannot be combined",
        ),
        (
            "[[kind]]\nid = \"Bad-Id\"\n",
            "user.toml:2: kind `Bad-Id`: id must match",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"--\"]\n",
            "user.toml:2: kind `a`: key `--` has no letters or digits",
        ),
        (
            "[[kind]]\nid = \"a\"\nkeys = [\"a\"]\n\n[[kind.also]]\npattern = '(x'\n",
            "user.toml:6: kind `a`: bad regex in `pattern`",
        ),
    ];
    for (text, want) in cases {
        let e = err(text);
        assert!(e.starts_with(want), "got {e:?}\nwant prefix {want:?}");
    }
}

#[test]
fn embedded_file_errors_name_the_embedded_path() {
    // The same checks run on the shipped file; a broken copy of it cites
    // `detectors/identifiers.toml` and the right line.
    let broken = EMBEDDED_TEXT.replacen("validator = \"imei\"", "validator = \"lunh\"", 1);
    let line = broken
        .lines()
        .position(|l| l.contains("\"lunh\""))
        .map(|i| i + 1)
        .unwrap();
    let e = RuleSet::from_toml(&broken, EMBEDDED_ORIGIN)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "detectors/identifiers.toml:{line}: kind `imei`: unknown validator `lunh`"
        )),
        "{e}"
    );
}

#[test]
fn user_directories_extend_and_add_kinds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-extend.toml"),
        "[[kind]]\nid = \"imei\"\nkeys = [\"hw_code\"]\nplaceholders = [\"490154203237518\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20-new.toml"),
        "[defaults]\nplaceholders = [\"redacted\"]\n\n[[kind]]\nid = \"wechat_openid\"\ndescription = \"WeChat OpenID\"\nkeys = [\"openid\", \"open_id\"]\npattern = 'o[0-9A-Za-z_-]{27}'\nboundary = '[0-9A-Za-z_-]'\nneeds_key_context = true\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not toml [[").unwrap();
    let rules = RuleSet::load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(rules.kind_for_key("device_hw_code"), Some("imei"));
    assert_eq!(rules.kind_for_key("deviceImei"), Some("imei"));
    assert!(rules.is_placeholder("imei", "490154203237518"));
    assert!(rules.is_placeholder("phone", "REDACTED"));
    assert_eq!(rules.kind_for_key("user_openid"), Some("wechat_openid"));
    let openid = rules.kind("wechat_openid").unwrap();
    assert_eq!(openid.patterns.len(), 1);
    assert!(openid.patterns[0].needs_key_context);
    // The embedded imei rule is still there after the extension.
    assert_eq!(rules.kind("imei").unwrap().patterns.len(), 1);
}

#[test]
fn user_file_errors_name_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, "[[kind]]\nid = \"x\"\nkeys = [\"imei\"]\n").unwrap();
    let e = RuleSet::load(&[dir.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    let want = format!(
        "{}:2: kind `x`: key `imei` already names kind `imei` (detectors/identifiers.toml:",
        path.display()
    );
    assert!(e.starts_with(&want), "{e}");

    let missing = dir.path().join("nope");
    let e = RuleSet::load(std::slice::from_ref(&missing)).unwrap_err();
    assert!(matches!(e, RuleError::Io { .. }), "{e}");
    assert!(e.to_string().starts_with(&missing.display().to_string()));
}

#[test]
fn byte_classes_cover_the_bytes_they_name() {
    let digits = byte_class("[0-9]").unwrap();
    assert!(digits.contains(b'0') && digits.contains(b'9'));
    assert!(!digits.contains(b'a') && !digits.contains(0xff));
    let not_digits = byte_class("[^0-9]").unwrap();
    assert!(not_digits.contains(0xff) && not_digits.contains(b'\n'));
    assert!(!not_digits.contains(b'5'));
    assert!(byte_class("[0-9").is_err());
}

/// What the alias and deny-token tries replace: every token suffix looked
/// up in the hash maps, longest first.
fn kind_by_maps(rules: &RuleSet, key: &str) -> Option<usize> {
    if key.len() > 256 {
        return None;
    }
    key_suffixes(key).find_map(|(suffix, whole)| {
        let exact = whole.then(|| rules.exact_aliases.get(&suffix)).flatten();
        exact.or_else(|| rules.suffix_aliases.get(&suffix)).copied()
    })
}

fn deny_by_maps(rules: &RuleSet, key: &str) -> bool {
    let tokens = key_tokens(key);
    tokens.iter().any(|t| rules.deny_context.contains(t))
        || rules.deny_context.contains(&tokens.concat())
}

proptest::proptest! {
    #[test]
    fn tries_agree_with_the_alias_maps(
        parts in proptest::collection::vec(proptest::sample::select(vec![
            "imei", "IMEI", "Imei", "mac", "Mac", "address", "Address", "wifi", "ap", "sn", "ime",
            "id", "Id", "android", "order", "ts", "time", "trace", "x", "2", "1", "_", "-", ".",
            " ", "[", "]", "sha256", "md5", "phone", "Number", "lat", "lng", "e",
        ]), 0..40),
    ) {
        static RULES: std::sync::LazyLock<RuleSet> = std::sync::LazyLock::new(RuleSet::embedded);
        let rules = &*RULES;
        let key = parts.concat();
        proptest::prop_assert_eq!(rules.kind_index_for_key(&key), kind_by_maps(rules, &key));
        proptest::prop_assert_eq!(rules.is_deny_context(&key), deny_by_maps(rules, &key));
        // The quick walk clears only keys that name nothing.
        if rules.alias_trie().ends_no_entry(key.as_bytes()) {
            proptest::prop_assert_eq!(kind_by_maps(rules, &key), None);
        }
    }
}

#[test]
fn the_quick_walk_clears_keys_no_alias_ends() {
    let rules = RuleSet::embedded();
    let trie = rules.alias_trie();
    for key in [
        "ts",
        "order_id",
        "request_id",
        "sha256",
        "timestamp",
        "",
        "__",
    ] {
        assert!(trie.ends_no_entry(key.as_bytes()), "{key:?}");
    }
    // An alias ends them (`imei`, `mac`), or a byte the walk cannot judge.
    for key in [
        "device_IMEI",
        "wifiMac",
        "machine_imei",
        "xmac",
        "设备imei",
        "名",
    ] {
        assert!(!trie.ends_no_entry(key.as_bytes()), "{key:?}");
    }
}
