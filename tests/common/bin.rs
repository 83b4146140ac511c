//! The `leakscope` binary as a child process: its stderr streamed line by
//! line, its output collected, and killed on drop so a failing assertion
//! never leaves a proxy running.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Upper bound on any wait; it only bounds a failure, never paces a pass.
pub const WAIT: Duration = Duration::from_secs(30);
/// The banner line that carries the listening address.
pub const BANNER: &str = "leakscope proxy listening on ";
/// The last banner line: once seen, the whole banner has been printed.
pub const BANNER_END: &str = "Recording to ";

/// A running `leakscope` process with its stderr streamed line by line.
pub struct Bin {
    child: Child,
    stderr_lines: Receiver<String>,
    /// Every stderr line received so far.
    pub stderr: Vec<String>,
    stdout_lines: Receiver<String>,
    /// Every stdout line received so far.
    pub stdout: Vec<String>,
}

/// What a finished process left behind.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Bin {
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Bin {
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
        let stderr_lines = lines_of(child.stderr.take().expect("piped stderr"));
        let stdout_lines = lines_of(child.stdout.take().expect("piped stdout"));
        Bin {
            child,
            stderr_lines,
            stderr: Vec::new(),
            stdout_lines,
            stdout: Vec::new(),
        }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_for_stderr(&mut self, needle: &str) -> String {
        wait_for_line(&self.stderr_lines, &mut self.stderr, needle, "stderr")
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub fn wait_for_stdout(&mut self, needle: &str) -> String {
        wait_for_line(&self.stdout_lines, &mut self.stdout, needle, "stdout")
    }

    /// Waits for the whole banner and returns the port the proxy listens on.
    pub fn wait_for_banner(&mut self) -> u16 {
        let line = self.wait_for_stderr(BANNER);
        self.wait_for_stderr(BANNER_END);
        let port = line.rsplit(':').next().and_then(|p| p.trim().parse().ok());
        port.unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    /// The `CA fingerprint (SHA-256): ...` value from the banner.
    pub fn banner_fingerprint(&mut self) -> String {
        let line = self.wait_for_stderr("CA fingerprint (SHA-256): ");
        line.split("CA fingerprint (SHA-256): ")
            .nth(1)
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Sends `signal` (e.g. "TERM", "INT") with the system `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (bounded) for the process to exit and collects its output.
    pub fn finish(&mut self) -> Finished {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            while let Ok(line) = self.stderr_lines.try_recv() {
                self.stderr.push(line);
            }
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
        while let Ok(line) = self.stdout_lines.recv_timeout(WAIT) {
            self.stdout.push(line);
        }
        let mut stdout = self.stdout.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        Finished {
            status,
            stdout,
            stderr: self.stderr.join("\n"),
        }
    }
}

/// Streams the lines of `pipe` through a channel from a reader thread.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded by [`WAIT`]) for a line containing `needle`, keeping
/// every line received in `seen`.
fn wait_for_line(
    lines: &Receiver<String>,
    seen: &mut Vec<String>,
    needle: &str,
    name: &str,
) -> String {
    if let Some(line) = seen.iter().find(|l| l.contains(needle)) {
        return line.clone();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(e) => {
                let why = match e {
                    RecvTimeoutError::Timeout => "not within the wait limit",
                    RecvTimeoutError::Disconnected => "the pipe closed first",
                };
                let all = seen.join("\n");
                panic!("no {name} line with {needle:?} ({why}); {name}:\n{all}")
            }
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

impl Finished {
    /// Asserts a zero exit status, showing the output otherwise.
    pub fn assert_ok(&self) -> &Finished {
        let (status, out, err) = (&self.status, &self.stdout, &self.stderr);
        assert!(
            status.success(),
            "exit {status:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
        self
    }

    /// Asserts a non-zero exit status before the proxy ever listened.
    pub fn assert_failed(&self) -> &Finished {
        let (status, out, err) = (&self.status, &self.stdout, &self.stderr);
        assert!(
            !status.success(),
            "expected failure\nstdout:\n{out}\nstderr:\n{err}"
        );
        lacks(err, BANNER);
        self
    }
}

pub fn has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not found in:\n{text}");
}

pub fn lacks(text: &str, needle: &str) {
    assert!(
        !text.contains(needle),
        "{needle:?} unexpectedly in:\n{text}"
    );
}

/// Runs a command that should end by itself (bounded by [`WAIT`]).
pub fn run_to_end<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Finished {
    Bin::spawn(args).finish()
}

/// `run` arguments listening on `listen` with certs and output in `dir`.
pub fn run_args(listen: &str, dir: &Path) -> Vec<String> {
    let (certs, out) = (dir.join("certs"), dir.join("out"));
    let (certs, out) = (certs.to_str().unwrap(), out.to_str().unwrap());
    // The control API on an ephemeral port, so parallel tests never collide.
    let args = [
        "run",
        "--listen",
        listen,
        "--certs",
        certs,
        "--out",
        out,
        "--control",
        "127.0.0.1:0",
    ];
    args.map(String::from).to_vec()
}

/// [`run_args`] plus the example device profile and trust in the test
/// origin's CA (`origin_ca`): a session that makes findings.
pub fn profiled_run_args(dir: &Path, origin_ca: &Path) -> Vec<String> {
    let mut args = run_args("127.0.0.1:0", dir);
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("detectors/example-profile.toml");
    args.extend([
        "--upstream-ca".into(),
        origin_ca.display().to_string(),
        "--profile".into(),
        profile.display().to_string(),
    ]);
    args
}

/// Parses every line of a JSONL evidence file; a half line fails the test.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}
