//! The harness of `tests/android.rs`: a fake device per test (the scripted
//! `tests/android/fake-adb` behind an `adb` link first on PATH), running the
//! binary against it, and the adb command sequences the tests expect.

use leakscope::ca::CertAuthority;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const EMU: &str = "-s emulator-5554";
pub const PHONE: &str = "-s R58M12ABCDE";

/// One fake device and a directory to work in.
pub struct Fake {
    pub dir: tempfile::TempDir,
    pub env: Vec<(&'static str, String)>,
}

impl Fake {
    /// A device answering as `api`, `kind` (emulator|phone), `root` (adbd|su|none).
    pub fn new(api: u32, kind: &str, root: &str) -> Fake {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin dir");
        let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/android/fake-adb");
        std::os::unix::fs::symlink(&fake, bin.join("adb")).expect("adb link");
        let mut fake = Fake {
            dir,
            env: Vec::new(),
        };
        fake.set("FAKE_ADB_API", &api.to_string());
        fake.set("FAKE_ADB_KIND", kind);
        fake.set("FAKE_ADB_ROOT", root);
        fake
    }

    pub fn set(&mut self, key: &'static str, value: &str) -> &mut Fake {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.to_string()));
        self
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn certs(&self) -> PathBuf {
        self.path("certs")
    }

    /// The leakscope command, with the fake first on PATH.
    pub fn command(&self, args: &[&str]) -> Command {
        let path = std::env::var("PATH").unwrap_or_default();
        let mut command = Command::new(env!("CARGO_BIN_EXE_leakscope"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("PATH", format!("{}:{path}", self.path("bin").display()))
            .env("FAKE_ADB_LOG", self.path("adb.log"))
            .env("FAKE_ADB_STATE", self.path("state"))
            .env("TMPDIR", self.dir.path())
            .env_remove("ANDROID_SERIAL")
            .env_remove("LEAKSCOPE_CERTS")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Runs `leakscope ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running leakscope")
    }

    /// `leakscope android SUBCOMMAND --certs DIR ARGS`.
    pub fn android(&self, subcommand: &str, args: &[&str]) -> Output {
        let certs = self.certs().display().to_string();
        let mut all = vec!["android", subcommand];
        if subcommand != "profile" {
            all.extend(["--certs", &certs]);
        }
        all.extend(args);
        self.run(&all)
    }

    /// The log, one adb invocation a line; emptied for the next step.
    pub fn take_log(&self) -> Vec<String> {
        let path = self.path("adb.log");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        text.lines().map(str::to_string).collect()
    }

    /// A file the fake received with `adb push`, by remote file name.
    pub fn pushed(&self, name: &str) -> String {
        std::fs::read_to_string(self.path("state/pushed").join(name))
            .unwrap_or_else(|e| panic!("{name} was not pushed: {e}"))
    }

    pub fn hash(&self) -> String {
        CertAuthority::load(&self.certs())
            .expect("the CA setup created")
            .android_hash()
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
pub fn ok(out: &Output) -> String {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

#[track_caller]
pub fn failed(out: &Output) -> String {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "succeeded\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stderr
}

/// Asserts the log equals `expected`; `*` in an expected line stands for
/// one word (a temporary path).
#[track_caller]
pub fn assert_log(log: &[String], expected: &[String]) {
    let matches = |line: &str, want: &str| match want.split_once('*') {
        Some((head, tail)) => {
            line.len() > head.len() + tail.len()
                && line.starts_with(head)
                && line.ends_with(tail)
                && !line[head.len()..line.len() - tail.len()].contains(' ')
        }
        None => line == want,
    };
    let same = log.len() == expected.len() && log.iter().zip(expected).all(|(l, e)| matches(l, e));
    assert!(
        same,
        "adb calls differ\n--- got:\n{}\n--- expected:\n{}",
        log.join("\n"),
        expected.join("\n")
    );
}

/// Lines prefixed with the serial flag.
pub fn on(serial: &str, lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| format!("{serial} {l}")).collect()
}

/// `adb devices` and the device probe up to root, for a debuggable
/// emulator that is not yet root.
pub fn probe_adb_root(serial: &str) -> Vec<String> {
    let mut lines = vec!["devices".to_string()];
    lines.extend(on(
        serial,
        &[
            "shell getprop sys.boot_completed",
            "shell getprop ro.build.version.sdk",
            "shell getprop ro.kernel.qemu",
            "shell getprop ro.boot.qemu",
            "shell id -u",
            "shell getprop ro.debuggable",
            "root",
            "wait-for-device",
            "shell id -u",
        ],
    ));
    lines
}

/// The probe when adbd is already root (a second command on the device).
pub fn probe_rooted(serial: &str) -> Vec<String> {
    let mut lines = vec!["devices".to_string()];
    lines.extend(on(
        serial,
        &[
            "shell getprop sys.boot_completed",
            "shell getprop ro.build.version.sdk",
            "shell getprop ro.kernel.qemu",
            "shell getprop ro.boot.qemu",
            "shell id -u",
        ],
    ));
    lines
}

/// The probe of a production build without root, with or without su.
pub fn probe_unrooted(serial: &str, su: bool) -> Vec<String> {
    let mut lines = vec!["devices".to_string()];
    lines.extend(on(
        serial,
        &[
            "shell getprop sys.boot_completed",
            "shell getprop ro.build.version.sdk",
            "shell getprop ro.kernel.qemu",
            "shell getprop ro.boot.qemu",
            "shell id -u",
            "shell getprop ro.debuggable",
            "shell which su",
        ],
    ));
    if su {
        lines.extend(on(serial, &["shell su -c 'id -u'"]));
    }
    lines
}

pub fn system_store_install(fake: &Fake) -> Vec<String> {
    let hash = fake.hash();
    let file = format!("/system/etc/security/cacerts/{hash}.0");
    let local = fake.certs().join(format!("{hash}.0"));
    on(
        EMU,
        &[
            "remount",
            &format!("push {} {file}", local.display()),
            &format!("shell chmod 644 {file}"),
            &format!("shell chcon u:object_r:system_file:s0 {file}"),
        ],
    )
}

pub fn tmpfs_install(fake: &Fake, serial: &str, su: bool) -> Vec<String> {
    let hash = fake.hash();
    let local = fake.certs().join(format!("{hash}.0"));
    let run = if su {
        "shell su -c 'sh /data/local/tmp/leakscope-ca.sh install'"
    } else {
        "shell sh /data/local/tmp/leakscope-ca.sh install"
    };
    on(
        serial,
        &[
            &format!(
                "push {} /data/local/tmp/leakscope-{hash}.0",
                local.display()
            ),
            "push * /data/local/tmp/leakscope-ca.sh",
            run,
        ],
    )
}
