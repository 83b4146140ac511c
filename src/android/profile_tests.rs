//! Tests of `profile.rs`: pure helpers, and reading from the fake adb.

use super::*;
use crate::android::{device, fake};

#[test]
fn meid_and_mac_bits() {
    assert!(looks_like_meid("A0000049123456"));
    assert!(!looks_like_meid("35824005111111"));
    assert!(!looks_like_meid("358240051111110"));
    assert!(locally_administered("02:1a:11:f0:3c:77"));
    assert!(locally_administered("da:a1:19:00:00:01"));
    assert!(!locally_administered("a4:2b:b0:c1:d2:e3"));
    assert!(!locally_administered(""));
}

#[test]
fn locations_are_checked_like_the_loader() {
    assert_eq!(
        check_location(48.85837, 2.294481),
        Outcome::Read(Value::Location(48.85837, 2.294481))
    );
    assert!(matches!(check_location(0.0, 0.0), Outcome::Rejected(r) if r.contains("placeholder")));
    assert!(matches!(check_location(91.0, 0.0), Outcome::Rejected(_)));
    assert!(matches!(
        check_location(f64::NAN, 1.0),
        Outcome::Rejected(_)
    ));
}

#[test]
fn values_are_checked_by_the_profile_validators() {
    assert_eq!(
        check_value("imei", "358240051111110"),
        Ok("358240051111110".into())
    );
    let luhn = check_value("imei", "358240051111111").unwrap_err();
    assert!(luhn.contains("check digit"), "{luhn}");
    assert!(!luhn.contains("358240051111111"), "{luhn}");
    let mac = check_value("mac", "02:00:00:00:00:00").unwrap_err();
    assert!(mac.contains("placeholder"), "{mac}");
    assert_eq!(
        check_value("bt_mac", "5C-51-81-2E-9A-0B"),
        Ok("5c:51:81:2e:9a:0b".into())
    );
    assert!(check_value("installed_apps", "not a package").is_err());
    assert!(check_value("model", " ").is_err());
    assert!(check_value("location", "1,2").is_err());
}

#[test]
fn strings_are_escaped() {
    assert_eq!(toml_string("Pixel 7"), "\"Pixel 7\"");
    let odd = toml_string("a\"b\\c");
    let parsed: toml::Table = format!("model = {odd}").parse().unwrap_or_default();
    assert_eq!(
        parsed.get("model").and_then(|v| v.as_str()),
        Some("a\"b\\c")
    );
}

#[test]
fn reads_and_renders_a_rooted_api29_emulator() -> anyhow::Result<()> {
    let (_dir, adb) = fake::adb(&[("FAKE_ADB_API", "29")]);
    let device = device::connect(adb)?;
    let reading = read(&device, &Options::default())?;
    let imei = Outcome::Read(Value::Text("358240051111110".into()));
    assert_eq!(reading.get("imei"), Some(&imei));
    assert!(matches!(
        reading.get("bt_mac"),
        Some(Outcome::NotRead(why)) if why.contains("not set")
    ));
    let text = render(&device, &reading)?;
    let profile = DeviceProfile::from_toml(&text, "test")?;
    assert_eq!(profile.model(), Some("Android SDK built for x86_64"));
    assert_eq!(profile.installed_apps().len(), 4);
    Ok(())
}
#[test]
fn missing_services_are_not_read_not_errors() -> anyhow::Result<()> {
    let (_dir, adb) = fake::adb(&[("FAKE_ADB_API", "33"), ("FAKE_ADB_BARE", "1")]);
    let device = device::connect(adb)?;
    let reading = read(&device, &Options::default())?;
    assert!(matches!(
        reading.get("adid"),
        Some(Outcome::NotRead(why)) if why.contains("no advertising ID")
    ));
    for key in ["imei", "imsi", "iccid", "phone"] {
        assert!(
            matches!(reading.get(key), Some(Outcome::NotRead(why)) if why.contains("no Parcel")),
            "{key}: {:?}",
            reading.get(key)
        );
    }
    DeviceProfile::from_toml(&render(&device, &reading)?, "test")?;
    Ok(())
}
