//! `leakscope android ...` and `run --android` end to end, against the
//! scripted fake `adb` in `tests/android/fake-adb` (no real device here).
//!
//! Each test gets its own directory holding an `adb` link to the fake (put
//! first on PATH), the fake's invocation log and device state, and the CA.
//! The fake answers as the device chosen by `FAKE_ADB_*` variables; the
//! tests assert the exact adb command sequences leakscope runs.

#[path = "android/harness.rs"]
mod harness;

use harness::*;
use leakscope::ca::CertAuthority;
use leakscope::detect::profile::DeviceProfile;
use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn setup_api29_rooted_emulator_uses_the_system_store() {
    let fake = Fake::new(29, "emulator", "adbd");
    let stdout = ok(&fake.android("setup", &[]));
    let mut expected = probe_adb_root(EMU);
    expected.extend(system_store_install(&fake));
    expected.extend(on(
        EMU,
        &["shell settings put global http_proxy 10.0.2.2:8080"],
    ));
    assert_log(&fake.take_log(), &expected);
    assert!(stdout.contains("system store"), "{stdout}");
    assert!(stdout.contains("10.0.2.2:8080"), "{stdout}");
    assert!(
        stdout.contains("Undo: leakscope android teardown --serial emulator-5554"),
        "{stdout}"
    );

    // Teardown: proxy cleared, the file removed after a remount.
    let stdout = ok(&fake.android("teardown", &[]));
    let file = format!("/system/etc/security/cacerts/{}.0", fake.hash());
    let mut expected = probe_rooted(EMU);
    expected.extend(on(
        EMU,
        &[
            "shell settings put global http_proxy :0",
            "shell cat /proc/mounts",
            &format!("shell ls {file}"),
            "remount",
            &format!("shell rm -f {file}"),
        ],
    ));
    assert_log(&fake.take_log(), &expected);
    assert!(stdout.contains(&format!("removed {file}")), "{stdout}");
}

#[test]
fn setup_api33_rooted_emulator_uses_the_system_store() {
    let fake = Fake::new(33, "emulator", "adbd");
    ok(&fake.android("setup", &["--port", "8888"]));
    let mut expected = probe_adb_root(EMU);
    expected.extend(system_store_install(&fake));
    expected.extend(on(
        EMU,
        &["shell settings put global http_proxy 10.0.2.2:8888"],
    ));
    assert_log(&fake.take_log(), &expected);
}

#[test]
fn setup_api33_falls_back_to_tmpfs_when_remount_fails() {
    let mut fake = Fake::new(33, "emulator", "adbd");
    fake.set("FAKE_ADB_REMOUNT", "fail");
    let stdout = ok(&fake.android("setup", &[]));
    let mut expected = probe_adb_root(EMU);
    expected.extend(on(EMU, &["remount"]));
    expected.extend(tmpfs_install(&fake, EMU, false));
    expected.extend(on(
        EMU,
        &["shell settings put global http_proxy 10.0.2.2:8080"],
    ));
    assert_log(&fake.take_log(), &expected);
    assert!(stdout.contains("-writable-system"), "{stdout}");
    assert!(stdout.contains("disable-verification"), "{stdout}");
    let script = fake.pushed("leakscope-ca.sh");
    assert!(script.contains("APEX=0"), "{script}");
}

#[test]
fn setup_stops_when_remount_needs_a_reboot() {
    let mut fake = Fake::new(33, "emulator", "adbd");
    fake.set("FAKE_ADB_REMOUNT", "reboot");
    let stderr = failed(&fake.android("setup", &[]));
    assert!(stderr.contains("reboot"), "{stderr}");
    // Nothing after the remount: no proxy set on a device without the CA.
    let log = fake.take_log();
    assert_eq!(
        log.last().map(String::as_str),
        Some("-s emulator-5554 remount")
    );
}

#[test]
fn setup_api34_rooted_emulator_mounts_the_apex_store_everywhere() {
    let fake = Fake::new(34, "emulator", "adbd");
    let stdout = ok(&fake.android("setup", &[]));
    let mut expected = probe_adb_root(EMU);
    expected.extend(tmpfs_install(&fake, EMU, false));
    expected.extend(on(
        EMU,
        &["shell settings put global http_proxy 10.0.2.2:8080"],
    ));
    assert_log(&fake.take_log(), &expected);
    assert!(
        stdout.contains("zygote (2) and 41 running app(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/apex/com.android.conscrypt/cacerts"),
        "{stdout}"
    );

    let hash = fake.hash();
    let script = fake.pushed("leakscope-ca.sh");
    assert_eq!(
        Some(script.clone()),
        leakscope::android::script::tmpfs_script(&hash, true)
    );
    for needle in [
        &format!("H={hash}.0") as &str,
        &format!("CERT=/data/local/tmp/leakscope-{hash}.0"),
        "S=/system/etc/security/cacerts",
        "C=/apex/com.android.conscrypt/cacerts",
        "APEX=1",
        // The stock CAs come from the APEX store on 14+.
        "[ $APEX = 1 ] && SRC=$C",
        "cp $SRC/* $STAGE/",
        "mount -t tmpfs -o mode=755 tmpfs $S",
        "chcon u:object_r:system_file:s0 $S $S/*",
        "mounted $C || mount --bind $S $C",
        "pidof zygote zygote64",
        "ps -o PID -P $1 | grep -v PID",
        "nsenter --mount=/proc/$Z/ns/mnt -- /system/bin/sh $SELF here",
        "nsenter --mount=/proc/$P/ns/mnt -- /system/bin/sh $SELF here",
    ] {
        assert!(
            script.contains(needle),
            "script lacks {needle:?}:\n{script}"
        );
    }
    // POSIX sh syntax (the device runs mksh; dash here).
    let checked = Command::new("sh")
        .arg("-n")
        .arg(fake.path("state/pushed/leakscope-ca.sh"))
        .status()
        .expect("running sh -n");
    assert!(checked.success());
    assert_eq!(
        fake.pushed(&format!("leakscope-{hash}.0")),
        std::fs::read_to_string(fake.certs().join(format!("{hash}.0"))).unwrap_or_default()
    );

    // Teardown finds the tmpfs and unmounts it with the same script.
    ok(&fake.android("teardown", &[]));
    let mut expected = probe_rooted(EMU);
    expected.extend(on(
        EMU,
        &[
            "shell settings put global http_proxy :0",
            "shell cat /proc/mounts",
            "push * /data/local/tmp/leakscope-ca.sh",
            "shell sh /data/local/tmp/leakscope-ca.sh remove",
        ],
    ));
    assert_log(&fake.take_log(), &expected);
}

#[test]
fn setup_api33_unrooted_phone_uses_the_user_store_and_adb_reverse() {
    let fake = Fake::new(33, "phone", "none");
    let stdout = ok(&fake.android("setup", &[]));
    let cer = fake.certs().join("leakscope-ca.cer");
    let mut expected = probe_unrooted(PHONE, false);
    expected.extend(on(
        PHONE,
        &[
            &format!("push {} /sdcard/Download/leakscope-ca.cer", cer.display()),
            "shell am start -a android.settings.SECURITY_SETTINGS",
            "reverse tcp:8080 tcp:8080",
            "shell settings put global http_proxy 127.0.0.1:8080",
        ],
    ));
    assert_log(&fake.take_log(), &expected);
    let ca = CertAuthority::load(&fake.certs()).expect("CA");
    for needle in [
        "NOT trusted yet",
        "Install a certificate > CA certificate",
        "Download/leakscope-ca.cer",
        &ca.fingerprint_sha256() as &str,
        "adb reverse",
        "127.0.0.1:8080",
        "Undo: leakscope android teardown --serial R58M12ABCDE",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }

    ok(&fake.android("teardown", &[]));
    let mut expected = probe_unrooted(PHONE, false);
    expected.extend(on(
        PHONE,
        &[
            "shell settings put global http_proxy :0",
            "reverse --remove tcp:8080",
            "shell cat /proc/mounts",
            "shell rm -f /sdcard/Download/leakscope-ca.cer",
        ],
    ));
    assert_log(&fake.take_log(), &expected);
}

#[test]
fn setup_su_rooted_phone_uses_tmpfs_through_su() {
    let fake = Fake::new(33, "phone", "su");
    ok(&fake.android("setup", &[]));
    let mut expected = probe_unrooted(PHONE, true);
    expected.extend(tmpfs_install(&fake, PHONE, true));
    expected.extend(on(
        PHONE,
        &[
            "reverse tcp:8080 tcp:8080",
            "shell settings put global http_proxy 127.0.0.1:8080",
        ],
    ));
    assert_log(&fake.take_log(), &expected);
}

#[test]
fn profile_api34_rooted_emulator_with_geo() {
    let fake = Fake::new(34, "emulator", "adbd");
    let stdout = ok(&fake.android(
        "profile",
        &["--geo", "48.8584,2.2945", "--app", "com.example.shop"],
    ));
    let mut expected = probe_adb_root(EMU);
    expected.extend(on(
        EMU,
        &[
            // Longitude first on the emulator console.
            "emu geo fix 2.2945 48.8584",
            "shell settings get secure android_id",
            "shell cat /data/data/com.google.android.gms/shared_prefs/adid_settings.xml",
            "shell service call iphonesubinfo 1 s16 com.android.shell",
            "shell service call iphonesubinfo 8 s16 com.android.shell",
            "shell service call iphonesubinfo 12 s16 com.android.shell",
            "shell service call iphonesubinfo 15 s16 com.android.shell i32 -1",
            "shell cat /sys/class/net/wlan0/address",
            "shell settings get secure bluetooth_address",
            "shell getprop ro.serialno",
            "shell getprop ro.product.model",
            "shell pm list packages -3",
            "shell dumpsys location",
        ],
    ));
    assert_log(&fake.take_log(), &expected);

    let written = std::fs::read_to_string(fake.path("device.toml")).expect("device.toml");
    let profile = DeviceProfile::from_toml(&written, "device.toml").expect("loads");
    let values: Vec<(String, String)> = profile
        .values()
        .map(|(k, v)| (k.to_string(), v.expose().to_string()))
        .collect();
    let want = [
        ("imei", "358240051111110"),
        ("imsi", "310260000000000"),
        ("iccid", "89014103211118510720"),
        ("serial", "EMULATOR33X1X14X0"),
        ("android_id", "3f8a2c1be47d9a05"),
        ("mac", "02:15:b2:00:00:00"),
        ("phone", "+15555215554"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(values, want, "{written}");
    assert_eq!(profile.location(), Some((48.8584, 2.2945)));
    assert_eq!(
        profile.installed_apps(),
        [
            "com.example.shop",
            "com.tencent.mm",
            "com.whatsapp",
            "org.mozilla.firefox"
        ]
    );
    assert_eq!(profile.model(), Some("sdk_gphone64_x86_64"));
    assert_eq!(profile.app(), Some("com.example.shop"));

    // The zeroed advertising ID is refused and listed, never written.
    assert!(!written.contains("adid ="), "{written}");
    assert!(!written.contains("00000000-0000"), "{written}");
    assert!(
        written.contains("#   adid: all zeros is a placeholder"),
        "{written}"
    );
    assert!(stdout.contains("Rejected (not written):"), "{stdout}");
    assert!(stdout.contains("adid: all zeros"), "{stdout}");
    assert!(stdout.contains("bt_mac: not set"), "{stdout}");
    assert!(stdout.contains("randomized"), "{stdout}");

    // An existing profile is kept without --force.
    let stderr = failed(&fake.android("profile", &[]));
    assert!(stderr.contains("--force"), "{stderr}");
}

#[test]
fn profile_api29_rooted_emulator_uses_api29_codes() {
    let fake = Fake::new(29, "emulator", "adbd");
    ok(&fake.android("profile", &["--out", "emu29.toml"]));
    let log = fake.take_log();
    let calls: Vec<&str> = log
        .iter()
        .filter(|l| l.contains("iphonesubinfo"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        calls,
        [
            "-s emulator-5554 shell service call iphonesubinfo 1 s16 com.android.shell",
            "-s emulator-5554 shell service call iphonesubinfo 7 s16 com.android.shell",
            "-s emulator-5554 shell service call iphonesubinfo 10 s16 com.android.shell",
            "-s emulator-5554 shell service call iphonesubinfo 12 s16 com.android.shell",
        ]
    );
    let written = std::fs::read_to_string(fake.path("emu29.toml")).expect("profile");
    let profile = DeviceProfile::from_toml(&written, "emu29.toml").expect("loads");
    let keys: Vec<&str> = profile.values().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&"adid") && keys.contains(&"imsi"),
        "{written}"
    );
    // No --geo: the emulator's own last fix.
    assert_eq!(profile.location(), Some((37.421998, -122.084)));
}

#[test]
fn profile_api33_unrooted_phone_says_what_needs_root() {
    let fake = Fake::new(33, "phone", "none");
    let stdout = ok(&fake.android("profile", &[]));
    let log = fake.take_log();
    // Only the phone number is asked for: the rest needs a privilege.
    let calls: Vec<&String> = log.iter().filter(|l| l.contains("iphonesubinfo")).collect();
    assert_eq!(
        calls,
        ["-s R58M12ABCDE shell service call iphonesubinfo 15 s16 com.android.shell i32 -1"]
    );
    for key in ["imei", "imsi", "iccid"] {
        assert!(
            stdout.contains(&format!(
                "{key}: API 29+ restricts it to READ_PRIVILEGED_PHONE_STATE"
            )),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("adid: kept in Google Play services"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mac: /sys/class/net/wlan0/address is not readable"),
        "{stdout}"
    );
    let written = std::fs::read_to_string(fake.path("device.toml")).expect("profile");
    let profile = DeviceProfile::from_toml(&written, "device.toml").expect("loads");
    let values: Vec<(&str, String)> = profile
        .values()
        .map(|(k, v)| (k, v.expose().to_string()))
        .collect();
    assert_eq!(
        values,
        [
            ("serial", "R58M12ABCDE".to_string()),
            ("android_id", "9c2e5a71b04d3f68".to_string()),
            ("bt_mac", "5c:51:81:2e:9a:0b".to_string()),
            ("phone", "+4915123456789".to_string()),
        ]
    );
    assert_eq!(profile.location(), Some((48.85837, 2.294481)));
    assert_eq!(profile.model(), Some("SM-G973F"));
}

#[test]
fn profile_api23_phone_handles_crlf_and_unknown_codes() {
    let fake = Fake::new(23, "phone", "none");
    let stdout = ok(&fake.android("profile", &[]));
    assert!(stdout.contains("API 29-34 only"), "{stdout}");
    let written = std::fs::read_to_string(fake.path("device.toml")).expect("profile");
    assert!(!written.contains('\r'), "{written:?}");
    let profile = DeviceProfile::from_toml(&written, "device.toml").expect("loads");
    assert_eq!(profile.installed_apps().len(), 4, "{written}");
    assert_eq!(profile.model(), Some("SM-G973F"));
    assert!(!fake.take_log().iter().any(|l| l.contains("iphonesubinfo")));
}

#[test]
fn profile_geo_on_a_phone_is_refused() {
    let fake = Fake::new(33, "phone", "none");
    let stderr = failed(&fake.android("profile", &["--geo", "48.8584,2.2945"]));
    assert!(stderr.contains("--geo works only on emulators"), "{stderr}");
    assert!(!fake.path("device.toml").exists());
}

#[test]
fn no_device_is_a_clear_error() {
    let mut fake = Fake::new(33, "emulator", "adbd");
    fake.set("FAKE_ADB_DEVICES", "none");
    let stderr = failed(&fake.android("setup", &[]));
    assert!(stderr.contains("no Android device found"), "{stderr}");
    assert!(stderr.contains("USB debugging"), "{stderr}");
    assert_eq!(fake.take_log(), ["devices"]);
}

#[test]
fn unauthorized_device_asks_for_the_rsa_prompt() {
    let mut fake = Fake::new(33, "phone", "none");
    fake.set("FAKE_ADB_DEVICES", "unauthorized");
    let stderr = failed(&fake.android("profile", &[]));
    assert!(stderr.contains("unauthorized"), "{stderr}");
    assert!(stderr.contains("Allow USB debugging"), "{stderr}");
    assert!(stderr.contains("RSA key"), "{stderr}");
}

#[test]
fn several_devices_need_a_serial() {
    let mut fake = Fake::new(33, "emulator", "adbd");
    fake.set("FAKE_ADB_DEVICES", "several");
    let stderr = failed(&fake.android("setup", &[]));
    assert!(stderr.contains("2 devices are connected"), "{stderr}");
    assert!(stderr.contains("emulator-5554 (device)"), "{stderr}");
    assert!(stderr.contains("--serial"), "{stderr}");
    assert_eq!(fake.take_log(), ["devices"]);

    // --serial picks one; every later call carries it.
    ok(&fake.android("setup", &["--serial", "R58M12ABCDE"]));
    let log = fake.take_log();
    assert_eq!(log.first().map(String::as_str), Some("devices"));
    assert!(log[1..].iter().all(|l| l.starts_with(PHONE)), "{log:?}");

    let stderr = failed(&fake.android("setup", &["--serial", "nope"]));
    assert!(stderr.contains("device nope is not connected"), "{stderr}");
}

#[test]
fn missing_adb_says_how_to_install_it() {
    let fake = Fake::new(33, "emulator", "adbd");
    let empty = fake.path("empty");
    std::fs::create_dir(&empty).expect("dir");
    let out = fake
        .command(&["android", "profile"])
        .env("PATH", &empty)
        .output()
        .expect("running leakscope");
    let stderr = failed(&out);
    assert!(stderr.contains("`adb` was not found"), "{stderr}");
    assert!(stderr.contains("platform-tools"), "{stderr}");
    assert!(stderr.contains("PATH"), "{stderr}");
}

/// Kills the child on drop, so a failing assertion leaves no proxy behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_android_sets_up_profiles_and_launches_the_app_fresh() {
    let fake = Fake::new(33, "emulator", "adbd");
    // A free port: the device must be given a real one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let listen = format!("127.0.0.1:{port}");
    let certs = fake.certs().display().to_string();
    let out_dir = fake.path("out");
    let out_text = out_dir.display().to_string();
    let child = fake
        .command(&[
            "run",
            "--android",
            "--app",
            "com.example.shop",
            "--listen",
            &listen,
            "--control",
            "off",
            "--certs",
            &certs,
            "--out",
            &out_text,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning leakscope");
    let mut child = Running(child);

    // Bounded wait for the launch, the last adb call.
    let log_path = fake.path("adb.log");
    let monkey =
        format!("{EMU} shell monkey -p com.example.shop -c android.intent.category.LAUNCHER 1");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains(&monkey)
    {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.0.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!("leakscope exited early ({status}):\n{stderr}");
        }
        assert!(Instant::now() < deadline, "no launch within the wait");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = child.0.wait().expect("waiting");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.0.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(status.success(), "exit {status}:\n{stderr}");

    let log = fake.take_log();
    let mut expected = probe_adb_root(EMU);
    expected.extend(on(EMU, &["shell pm path com.example.shop"]));
    expected.extend(system_store_install(&fake));
    expected.extend(on(
        EMU,
        &[&format!(
            "shell settings put global http_proxy 10.0.2.2:{port}"
        )],
    ));
    expected.extend(on(
        EMU,
        &[
            "shell settings get secure android_id",
            "shell cat /data/data/com.google.android.gms/shared_prefs/adid_settings.xml",
            "shell service call iphonesubinfo 1 s16 com.android.shell",
            "shell service call iphonesubinfo 8 s16 com.android.shell",
            "shell service call iphonesubinfo 12 s16 com.android.shell",
            "shell service call iphonesubinfo 15 s16 com.android.shell i32 -1",
            "shell cat /sys/class/net/wlan0/address",
            "shell settings get secure bluetooth_address",
            "shell getprop ro.serialno",
            "shell getprop ro.product.model",
            "shell pm list packages -3",
            "shell dumpsys location",
            "shell pm clear com.example.shop",
            "shell monkey -p com.example.shop -c android.intent.category.LAUNCHER 1",
        ],
    ));
    assert_log(&log, &expected);

    // The session used the profile it read.
    let written = std::fs::read_to_string(out_dir.join("device.toml")).expect("device.toml");
    let profile = DeviceProfile::from_toml(&written, "device.toml").expect("loads");
    assert_eq!(profile.app(), Some("com.example.shop"));
    let session = std::fs::read_to_string(out_dir.join("session.json")).expect("session.json");
    assert!(session.contains("sdk_gphone64_x86_64"), "{session}");
    assert!(stderr.contains("Started com.example.shop"), "{stderr}");
    assert!(
        stderr.contains("leakscope android teardown --serial emulator-5554"),
        "{stderr}"
    );
}

#[test]
fn run_android_refuses_an_app_that_is_not_installed() {
    let fake = Fake::new(33, "emulator", "adbd");
    let certs = fake.certs().display().to_string();
    let out = fake.run(&[
        "run",
        "--android",
        "--app",
        "com.not.installed",
        "--listen",
        "127.0.0.1:18080",
        "--control",
        "off",
        "--certs",
        &certs,
    ]);
    let stderr = failed(&out);
    assert!(
        stderr.contains("com.not.installed is not installed"),
        "{stderr}"
    );
    // Nothing was changed on the device.
    assert!(!fake.take_log().iter().any(|l| l.contains("settings put")));
}
