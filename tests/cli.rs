//! The `leakscope` binary end to end: real processes, real signals, a real
//! third-party client (curl), everything on loopback.
//!
//! Nothing here sleeps to synchronise: the tests wait for the child's own
//! output (the banner on stderr) or poll with a short interval under an
//! overall deadline. Every child is killed on drop, so a failing assertion
//! never leaves a proxy running.

mod common;

use common::origin::Origin;
use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound on any wait; it only bounds a failure, never paces a pass.
const WAIT: Duration = Duration::from_secs(30);
/// The banner line that carries the listening address.
const BANNER: &str = "leakscope proxy listening on ";
/// The last banner line: once seen, the whole banner has been printed.
const BANNER_END: &str = "Recording to ";

/// A running `leakscope` process with its stderr streamed line by line.
struct Bin {
    child: Child,
    stderr_lines: Receiver<String>,
    /// Every stderr line received so far.
    stderr: Vec<String>,
    stdout: Option<JoinHandle<String>>,
}

/// What a finished process left behind.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Bin {
    fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Bin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_leakscope"))
            .args(args)
            .env_remove("LEAKSCOPE_AUTH")
            .env_remove("LEAKSCOPE_CERTS")
            .env_remove("RUST_LOG")
            // Wide enough that live-log lines are never ellipsized.
            .env("COLUMNS", "200")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning leakscope");
        let (tx, stderr_lines) = channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        Bin {
            child,
            stderr_lines,
            stderr: Vec::new(),
            stdout: Some(stdout),
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Waits for a stderr line containing `needle` and returns it.
    fn wait_for_stderr(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        if let Some(line) = self.stderr.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no stderr line with {needle:?} within {WAIT:?}; stderr so far:\n{}",
                        self.stderr.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "leakscope closed stderr before printing {needle:?}; stderr:\n{}",
                        self.stderr.join("\n")
                    )
                }
            }
        }
    }

    /// Waits for the whole banner and returns the port the proxy listens on.
    fn wait_for_banner(&mut self) -> u16 {
        let line = self.wait_for_stderr(BANNER);
        self.wait_for_stderr(BANNER_END);
        let addr = line
            .split(BANNER)
            .nth(1)
            .expect("address after the banner text");
        addr.trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    /// The `CA fingerprint (SHA-256): ...` value from the banner.
    fn banner_fingerprint(&mut self) -> String {
        let line = self.wait_for_stderr("CA fingerprint (SHA-256): ");
        line.split("CA fingerprint (SHA-256): ")
            .nth(1)
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Sends `signal` (e.g. "TERM", "INT") with the system `kill` command.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (bounded) for the process to exit and collects its output.
    fn finish(&mut self) -> Finished {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for leakscope") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "leakscope still running after {WAIT:?}; stderr so far:\n{}",
                self.stderr.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The process is gone, so both pipes reach EOF promptly.
        while let Ok(line) = self.stderr_lines.recv_timeout(WAIT) {
            self.stderr.push(line);
        }
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().expect("stdout reader"))
            .unwrap_or_default();
        Finished {
            status,
            stdout,
            stderr: self.stderr.join("\n"),
        }
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command that should end by itself (bounded by [`WAIT`]).
fn run_to_end<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Finished {
    Bin::spawn(args).finish()
}

/// `run` arguments listening on `listen` with certs and output in `dir`.
fn run_args(listen: &str, dir: &Path) -> Vec<String> {
    let certs = dir.join("certs");
    let out = dir.join("out");
    let mut args = vec!["run", "--listen", listen, "--certs"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    args.push(certs.display().to_string());
    args.push("--out".into());
    args.push(out.display().to_string());
    args
}

/// Uppercase hex without separators, for comparing fingerprints.
fn normalize_hex(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Whether `program` can be run at all.
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs curl through the proxy, returning the body; fails the test on error.
fn curl(proxy_port: u16, extra: &[&str], url: &str) -> String {
    let output = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--proxy",
            &format!("http://127.0.0.1:{proxy_port}"),
        ])
        .args(extra)
        .arg(url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("running curl");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl {url} failed: {stderr}");
    String::from_utf8(output.stdout).expect("utf-8 body")
}

#[test]
fn curl_through_the_proxy_with_its_ca() {
    if !have("curl") {
        eprintln!("skipping: `curl` is not on PATH");
        return;
    }
    let curl_h2 = Command::new("curl")
        .arg("-V")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("Features:") && l.split_whitespace().any(|f| f == "HTTP2"))
        })
        .unwrap_or(false);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let origin = runtime.block_on(Origin::start());
    let dir = tempfile::tempdir().unwrap();
    let mut args = run_args("127.0.0.1:0", dir.path());
    args.push("--upstream-ca".into());
    args.push(origin.ca_pem_path.display().to_string());
    let mut proxy = Bin::spawn(&args);
    let port = proxy.wait_for_banner();

    let ca_pem = dir.path().join("certs").join("leakscope-ca.pem");
    let https_url = origin.https_url("/hello");
    let body = curl(port, &["--cacert", ca_pem.to_str().unwrap()], &https_url);
    assert_eq!(body, "hello from origin");
    let http_url = origin.http_url("/hello");
    assert_eq!(curl(port, &[], &http_url), "hello from origin");
    assert_eq!(
        origin.requests_seen(),
        2,
        "both requests reached the origin"
    );

    proxy.signal("TERM");
    let done = proxy.finish();
    assert!(
        done.status.success(),
        "exit status {:?}; stderr:\n{}",
        done.status,
        done.stderr
    );
    assert!(
        done.stdout.contains("Evidence written to") || done.stderr.contains("Evidence written to"),
        "stdout:\n{}\nstderr:\n{}",
        done.stdout,
        done.stderr
    );
    let origin_port = origin.https_addr.port();
    assert!(
        done.stdout.lines().any(|l| l.contains("GET")
            && l.contains(&format!("localhost:{origin_port}"))
            && l.contains("/hello")),
        "no live-log line for the HTTPS request; stdout:\n{}",
        done.stdout
    );

    let jsonl =
        std::fs::read_to_string(dir.path().join("out").join("flows.jsonl")).expect("flows.jsonl");
    let flows: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    let url_of =
        |f: &serde_json::Value| f["request"]["url"].as_str().unwrap_or_default().to_owned();
    let hellos: Vec<&serde_json::Value> = flows
        .iter()
        .filter(|f| url_of(f).ends_with("/hello"))
        .collect();
    assert_eq!(hellos.len(), 2, "flows.jsonl:\n{jsonl}");
    for flow in &hellos {
        assert_eq!(flow["response"]["status"], 200, "{flow}");
    }

    let https = hellos
        .iter()
        .find(|f| url_of(f).starts_with("https://"))
        .expect("the HTTPS flow");
    assert!(
        url_of(https).contains(&format!("localhost:{origin_port}")),
        "{https}"
    );
    assert_eq!(https["tls"]["mode"], "intercepted", "{https}");
    assert_eq!(https["tls"]["sni"], "localhost", "{https}");
    let expected_version = if curl_h2 { "HTTP/2.0" } else { "HTTP/1.1" };
    assert_eq!(
        https["request"]["http_version"], expected_version,
        "{https}"
    );

    let http = hellos
        .iter()
        .find(|f| url_of(f).starts_with("http://"))
        .expect("the plain HTTP flow");
    assert_eq!(url_of(http), http_url, "{http}");
    assert!(
        http.get("tls").is_none_or(serde_json::Value::is_null),
        "{http}"
    );
    assert_eq!(http["request"]["http_version"], "HTTP/1.1", "{http}");
}

/// The `SHA-256 fingerprint:` value `ca init` / `ca show` print.
fn shown_fingerprint(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with("SHA-256 fingerprint:"))
        .unwrap_or_else(|| panic!("no fingerprint in:\n{text}"));
    line["SHA-256 fingerprint:".len()..].trim().to_owned()
}

#[test]
fn ca_init_refuses_to_overwrite_and_show_prints_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().display().to_string();
    let init = ["ca", "init", "--certs", &certs];

    let first = run_to_end(&init);
    assert!(first.status.success(), "{}", first.stderr);
    let first_fp = shown_fingerprint(&first.stdout);
    let key = dir.path().join("leakscope-ca-key.pem");
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key mode {mode:o}");
    let pem = dir.path().join("leakscope-ca.pem");
    let first_pem = std::fs::read(&pem).unwrap();

    let again = run_to_end(&init);
    assert!(
        !again.status.success(),
        "second init must fail; stdout:\n{}",
        again.stdout
    );
    assert!(
        again.stderr.contains("--force"),
        "stderr:\n{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read(&pem).unwrap(),
        first_pem,
        "refused init must not touch the CA"
    );

    let forced = run_to_end(&["ca", "init", "--certs", &certs, "--force"]);
    assert!(forced.status.success(), "{}", forced.stderr);

    let show = run_to_end(&["ca", "show", "--certs", &certs]);
    assert!(show.status.success(), "{}", show.stderr);
    let shown = shown_fingerprint(&show.stdout);
    assert_ne!(
        normalize_hex(&shown),
        normalize_hex(&first_fp),
        "--force must make a new CA"
    );
    assert_eq!(shown, shown_fingerprint(&forced.stdout));
    assert!(
        show.stdout.contains("/apex/com.android.conscrypt/cacerts"),
        "{}",
        show.stdout
    );

    let android: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 10 && n.ends_with(".0"))
        .collect();
    assert_eq!(
        android.len(),
        1,
        "exactly one <hash>.0 file after --force: {android:?}"
    );
    assert!(
        show.stdout.contains(&android[0]),
        "show does not name {}:\n{}",
        android[0],
        show.stdout
    );

    if !have("openssl") {
        eprintln!("skipping the OpenSSL comparison: `openssl` is not on PATH");
        return;
    }
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .arg("-in")
            .arg(&pem)
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256"]);
    let fp = fp.split_once('=').expect("openssl fingerprint line").1;
    assert_eq!(normalize_hex(fp), normalize_hex(&shown));
    let hash = openssl(&["x509", "-noout", "-subject_hash_old"]);
    assert_eq!(android[0], format!("{}.0", hash.trim()));
}

#[test]
fn run_creates_ca_on_first_use_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let args = run_args("127.0.0.1:0", dir.path());

    let mut first = Bin::spawn(&args);
    first.wait_for_banner();
    let first_fp = first.banner_fingerprint();
    for name in [
        "leakscope-ca.pem",
        "leakscope-ca-key.pem",
        "leakscope-ca.cer",
    ] {
        assert!(
            certs.join(name).is_file(),
            "{name} missing after the banner"
        );
    }
    let pem = std::fs::read(certs.join("leakscope-ca.pem")).unwrap();
    first.signal("INT");
    let done = first.finish();
    assert!(
        done.status.success(),
        "SIGINT exit {:?}; stderr:\n{}",
        done.status,
        done.stderr
    );
    assert!(
        done.stdout.contains("Created a new CA"),
        "stdout:\n{}",
        done.stdout
    );
    assert!(
        done.stdout.contains("Evidence written to"),
        "stdout:\n{}",
        done.stdout
    );
    assert!(
        !done.stderr.contains("reachable from the network"),
        "loopback must not warn:\n{}",
        done.stderr
    );

    let mut second = Bin::spawn(&args);
    second.wait_for_banner();
    assert_eq!(
        second.banner_fingerprint(),
        first_fp,
        "the second run must reuse the CA"
    );
    second.signal("TERM");
    let done = second.finish();
    assert!(
        done.status.success(),
        "SIGTERM exit {:?}; stderr:\n{}",
        done.status,
        done.stderr
    );
    assert!(
        !done.stdout.contains("Created a new CA"),
        "stdout:\n{}",
        done.stdout
    );
    assert_eq!(std::fs::read(certs.join("leakscope-ca.pem")).unwrap(), pem);
}

#[test]
fn non_loopback_listen_warns() {
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = Bin::spawn(&run_args("0.0.0.0:0", dir.path()));
    proxy.wait_for_banner();
    // The warning belongs to the banner, which is complete by now.
    assert!(
        proxy
            .stderr
            .iter()
            .any(|l| l.contains("reachable from the network")),
        "no warning in:\n{}",
        proxy.stderr.join("\n")
    );
    proxy.signal("TERM");
    let done = proxy.finish();
    assert!(
        done.status.success(),
        "exit {:?}; stderr:\n{}",
        done.status,
        done.stderr
    );
}

#[test]
fn corrupt_ca_is_an_error_not_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let init = run_to_end(&["ca", "init", "--certs", certs.to_str().unwrap()]);
    assert!(init.status.success(), "{}", init.stderr);
    let pem = certs.join("leakscope-ca.pem");
    let garbage = b"this is not a certificate\n";
    std::fs::write(&pem, garbage).unwrap();

    let done = run_to_end(&run_args("127.0.0.1:0", dir.path()));
    assert!(
        !done.status.success(),
        "run must fail on a corrupt CA; stderr:\n{}",
        done.stderr
    );
    assert!(
        done.stderr.contains(&pem.display().to_string()),
        "error must name {}:\n{}",
        pem.display(),
        done.stderr
    );
    assert!(
        !done.stderr.contains(BANNER),
        "the proxy must not start:\n{}",
        done.stderr
    );
    assert_eq!(
        std::fs::read(&pem).unwrap(),
        garbage,
        "the corrupt file was replaced"
    );
}

#[test]
fn bad_flags_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 3] = [
        ("--body-limit", "ten", &["--body-limit", "not a size"]),
        ("--auth", "nocolon", &["--auth", "colon"]),
        ("--allow", "notacidr", &["--allow", "notacidr"]),
    ];
    for (flag, value, expected) in cases {
        let mut args = run_args("127.0.0.1:0", dir.path());
        args.push(flag.into());
        args.push(value.into());
        let done = run_to_end(&args);
        assert!(
            !done.status.success(),
            "{flag} {value} must be rejected; stderr:\n{}",
            done.stderr
        );
        assert!(
            !done.stderr.contains(BANNER),
            "{flag} {value}: the proxy started:\n{}",
            done.stderr
        );
        for needle in expected {
            assert!(
                done.stderr.contains(needle),
                "{flag} {value}: stderr lacks {needle:?}:\n{}",
                done.stderr
            );
        }
    }
}
