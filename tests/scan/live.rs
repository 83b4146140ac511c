//! Re-captures the third-party fixtures with the real tools (the `#[ignore]`
//! tests of tests/scan.rs). Run with `LEAKSCOPE_WRITE_FIXTURES=1` to
//! overwrite the committed fixtures with the new captures.

use crate::common::origin::Origin;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hudsucker::hyper::body::Incoming;
use hudsucker::hyper::header::{self, HeaderValue};
use hudsucker::hyper::service::service_fn;
use hudsucker::hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The page Chromium loads. It sends the planted identifiers the ways an
/// app's web view would: in a URL, in a JSON POST, over a WebSocket (text
/// and binary), and reads one back in a gzip-compressed response.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>leakscope scan fixture</title></head>
<body><p>leakscope scan fixture</p><script>
const socket = new Promise((resolve) => {
  const ws = new WebSocket('WS_URL');
  ws.binaryType = 'arraybuffer';
  let echoes = 0;
  ws.onopen = () => {
    ws.send(JSON.stringify({imei: '490154203237518', event: 'open'}));
    ws.send(new TextEncoder().encode('{"email":"tester@example.com"}'));
  };
  ws.onmessage = () => { if (++echoes === 2) { ws.close(); resolve(true); } };
  ws.onerror = () => resolve(false);
  setTimeout(() => resolve(false), 5000);
});
window.leakscopeDone = Promise.all([
  fetch('/collect?imei=490154203237518&androidid=3f8a2c1be47d9a05').then((r) => r.text()),
  fetch('/profile', {
    method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({phone: '+86 138 0013 8000', email: 'tester@example.com'}),
  }).then((r) => r.text()),
  socket,
]).then((all) => all[2], () => false);
</script></body></html>
"#;

/// `/collect` answers this, gzip-compressed: Chrome hands the HAR writer
/// the decoded text while the header still says gzip.
const COLLECT_JSON: &str = r#"{"ok":true,"device":{"imei":"490154203237518"}}"#;

pub fn scan_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scan")
}

/// Overwrites the committed fixture when asked to.
pub fn maybe_commit(capture: &Path, fixture: &str) {
    if std::env::var_os("LEAKSCOPE_WRITE_FIXTURES").is_some() {
        std::fs::copy(capture, scan_dir().join(fixture)).expect("writing the fixture");
        eprintln!("wrote tests/scan/{fixture}");
    }
}

/// Serves the page and its endpoints; the WebSocket echo is the shared
/// test origin's `/ws`.
async fn serve_page(ws_url: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the page server");
    let addr = listener.local_addr().expect("page server address");
    let page = Arc::new(PAGE.replace("WS_URL", &ws_url));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let page = page.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let page = page.clone();
                    async move { Ok::<_, Infallible>(answer(req, &page).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn answer(req: Request<Incoming>, page: &str) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &'static str, body: Vec<u8>| {
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = status;
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        res
    };
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/") => reply(StatusCode::OK, "text/html; charset=utf-8", page.into()),
        (Method::GET, "/collect") => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(COLLECT_JSON.as_bytes())
                .expect("gzip into a Vec");
            let mut res = reply(
                StatusCode::OK,
                "application/json",
                gz.finish().expect("gzip into a Vec"),
            );
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            res
        }
        (Method::POST, "/profile") => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            let saved = body.is_ok_and(|b| !b.is_empty());
            let text = format!("{{\"saved\":{saved}}}");
            reply(StatusCode::OK, "application/json", text.into_bytes())
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found".to_vec()),
    }
}

/// Installs chrome-har-capturer from the committed lock file if needed.
fn ensure_capturer() {
    let dir = scan_dir();
    if dir
        .join("node_modules/chrome-har-capturer/package.json")
        .exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .status()
        .expect("running npm (install Node.js and npm)");
    assert!(status.success(), "npm ci --prefix tests/scan failed");
}

/// Loads the page in headless Chromium under chrome-har-capturer; the HAR
/// is written to `out`.
pub async fn capture_with_chromium(out: &Path) {
    ensure_capturer();
    let origin = Origin::start().await;
    let ws_url = format!("ws://127.0.0.1:{}/ws", origin.http_addr.port());
    let page = serve_page(ws_url).await;
    let script = scan_dir().join("capture-chromium.js");
    let run = tokio::process::Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}/", page.port()))
        .arg(out)
        .output()
        .await
        .expect("running node (install Node.js)");
    assert!(
        run.status.success(),
        "capture-chromium.js: {} (is Debian's `chromium` installed?)\n{}{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Runs mitmdump with `hardump` through tests/scan/mitmproxy-hardump.sh.
pub fn capture_with_mitmproxy(out: &Path) {
    let run = Command::new("sh")
        .arg(scan_dir().join("mitmproxy-hardump.sh"))
        .arg(out)
        .output()
        .expect("running sh");
    assert!(
        run.status.success(),
        "mitmproxy-hardump.sh: {} (needs python3 with venv, pip access and curl)\n{}{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
