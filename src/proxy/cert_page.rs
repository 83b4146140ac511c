//! `http://leakscope.cert/`: the proxy's own page for installing its CA.
//!
//! Like mitmproxy's mitm.it, the page is answered by the proxy itself for
//! requests made *through* it, so a phone that is already pointed at the
//! proxy can fetch the certificate before it trusts it. The host never
//! reaches the network and is not recorded as a flow.

use crate::ca::{CertAuthority, install_steps};
use hudsucker::Body;
use hudsucker::hyper::header::{self, HeaderMap};
use hudsucker::hyper::{Response, StatusCode, Uri};

/// Host name the page answers on.
pub const CERT_HOST: &str = "leakscope.cert";

/// What the page serves, prepared once at start.
pub(crate) struct CertPage {
    pem: String,
    der: Vec<u8>,
    html: String,
}

impl CertPage {
    pub fn new(ca: &CertAuthority) -> CertPage {
        CertPage {
            pem: ca.cert_pem().to_owned(),
            der: ca.cert_der().to_vec(),
            html: page_html(&ca.fingerprint_sha256(), &install_steps(ca)),
        }
    }
}

/// True for a request addressed to [`CERT_HOST`] (absolute URI or Host).
pub(crate) fn is_cert_page(uri: &Uri, headers: &HeaderMap) -> bool {
    let host = uri.host().map(str::to_owned).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.split(':').next().unwrap_or(h).to_owned())
    });
    host.is_some_and(|h| h.eq_ignore_ascii_case(CERT_HOST))
}

pub(crate) fn serve(page: &CertPage, path: &str) -> Response<Body> {
    let (status, content_type, disposition, body): (_, _, _, Body) = match path {
        "/" | "/index.html" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            None,
            page.html.clone().into(),
        ),
        "/leakscope-ca.pem" => (
            StatusCode::OK,
            "application/x-pem-file",
            Some("attachment; filename=\"leakscope-ca.pem\""),
            page.pem.clone().into(),
        ),
        "/leakscope-ca.cer" => (
            StatusCode::OK,
            "application/x-x509-ca-cert",
            Some("attachment; filename=\"leakscope-ca.cer\""),
            page.der.clone().into(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            None,
            "not found\n".into(),
        ),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(disposition) = disposition {
        builder = builder.header(header::CONTENT_DISPOSITION, disposition);
    }
    builder.body(body).expect("static response parts are valid")
}

fn page_html(fingerprint: &str, steps: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>leakscope CA certificate</title>\
         <style>body{{font-family:sans-serif;max-width:46em;margin:1em auto;padding:0 1em}}\
         pre{{white-space:pre-wrap;background:#f4f4f4;padding:1em}}\
         a.dl{{display:inline-block;margin:.3em .6em .3em 0;padding:.5em 1em;background:#234;color:#fff;text-decoration:none}}</style>\
         </head><body><h1>leakscope CA certificate</h1>\
         <p>Install this certificate on the device under test so leakscope can decrypt its traffic. \
         Remove it when testing is over.</p>\
         <p><a class=\"dl\" href=\"/leakscope-ca.cer\">Download for Android / iOS (.cer)</a>\
         <a class=\"dl\" href=\"/leakscope-ca.pem\">Download PEM (.pem)</a></p>\
         <p>SHA-256 fingerprint: <code>{}</code></p><h2>Install steps</h2><pre>{}</pre></body></html>\n",
        escape(fingerprint),
        escape(steps)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
