"""Writes tests/scan/handmade.har: a HAR with leakscope-style phase pages and
the odd corners real HAR writers produce, for tests/scan.rs and the fuzz
tests of src/scan/har_input_tests.rs.

    python3 tests/scan/make_handmade.py

Entries (index in the file: what it exercises):
 0 Chrome-style HTTP/2 GET to an SDK host, pseudo-headers, identifiers in the
   URL, a decoded JSON response under `content-encoding: gzip`;
 1 JSON POST to the app's own backend (phone, email);
 2 a form given only as `postData.params` (no text);
 3 an image, base64 (media: not scanned);
 4 a response still gzip-compressed, base64 (must be decoded);
 5 a WebSocket: text frame sent, binary frame (base64) received, and a
   frame of an unknown type (warning);
 6 a request that failed: status 0 with Chrome's `_error`;
 7 a request body marked base64 that is not (warning; scanned as text);
 8 an entry whose `request.url` is null (skipped with a warning);
 9 the earliest entry, last in the file (entries are replayed by time).
Pages: pre-consent from 09:59:50, consented from 10:00:05, refused from
10:00:20, named as leakscope names them.
"""

import base64
import gzip
import json
import os

# Fixed bytes (not random) so the fixture is reproducible.
png = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(200))).decode()
gz_json = base64.b64encode(gzip.compress(b'{"device":{"imei":"490154203237518"}}', mtime=0)).decode()


def e(start, req, resp=None, **extra):
    d = {"startedDateTime": start, "time": 20.5, "request": req,
         "response": resp or {"status": 204, "statusText": "No Content", "httpVersion": "HTTP/1.1", "headers": [], "content": {"size": 0, "mimeType": "x-unknown"}},
         "cache": {}, "timings": {"blocked": 1, "dns": -1, "connect": -1, "send": 0.5, "wait": 15, "receive": 4}}
    d.update(extra)
    return d


def req(method, url, headers=(), **extra):
    r = {"method": method, "url": url, "httpVersion": "HTTP/1.1", "cookies": [], "headers": [{"name": n, "value": v} for n, v in headers], "queryString": [], "headersSize": -1, "bodySize": 0}
    r.update(extra)
    return r


entries = [
  e("2024-05-01T10:00:01.000Z",
    req("GET", "https://t.appsflyer.com/api/v6/collect?imei=490154203237518&androidid=3f8a2c1be47d9a05",
        [(":authority", "t.appsflyer.com"), (":method", "GET"), (":path", "/api/v6/collect?imei=490154203237518&androidid=3f8a2c1be47d9a05"), (":scheme", "https"), ("user-agent", "Mozilla/5.0")], httpVersion="h2"),
    {"status": 200, "statusText": "", "httpVersion": "h2", "headers": [{"name": "content-encoding", "value": "gzip"}, {"name": "content-type", "value": "application/json"}],
     "content": {"size": 38, "compression": -12, "mimeType": "application/json", "text": "{\"echo\":{\"email\":\"tester@example.com\"}}"}},
    pageref="phase-1-pre-consent", _initiator={"type": "script"}, _resourceType="fetch", serverIPAddress="203.0.113.7", connection="42"),
  e("2024-05-01T10:00:06.000Z",
    req("POST", "https://api.shop-app.test/v1/profile", [("Host", "api.shop-app.test"), ("Content-Type", "application/json")],
        postData={"mimeType": "application/json", "text": "{\"phone\":\"+86 138 0013 8000\",\"email\":\"tester@example.com\"}"}),
    pageref="phase-2-consented"),
  e("2024-05-01T10:00:07.000Z",
    req("POST", "http://ulogs.umeng.com/unify_logs", [("Content-Type", "application/x-www-form-urlencoded")],
        postData={"mimeType": "application/x-www-form-urlencoded", "params": [{"name": "oaid", "value": "5f3c9a2e-7d41-4b8e-a6c2-1e9f0b7d3a64"}, {"name": "note", "value": "a b&c"}]}),
    pageref="phase-2-consented"),
  e("2024-05-01T10:00:08.000Z",
    req("GET", "https://cdn.shop-app.test/pixel.png"),
    {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [{"name": "Content-Type", "value": "image/png"}],
     "content": {"size": 216, "mimeType": "image/png", "text": png, "encoding": "base64"}},
    pageref="phase-2-consented"),
  e("2024-05-01T10:00:09.000Z",
    req("GET", "https://api.shop-app.test/v1/device"),
    {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [{"name": "Content-Type", "value": "application/json"}, {"name": "Content-Encoding", "value": "gzip"}],
     "content": {"size": 37, "mimeType": "application/json", "text": gz_json, "encoding": "base64"}},
    pageref="phase-2-consented"),
  e("2024-05-01T10:00:10.000Z",
    req("GET", "wss://push.example.net/socket", [("Host", "push.example.net"), ("Upgrade", "websocket"), ("Connection", "Upgrade")]),
    {"status": 101, "statusText": "Switching Protocols", "httpVersion": "HTTP/1.1", "headers": [{"name": "Upgrade", "value": "websocket"}], "content": {"size": 0, "mimeType": "x-unknown"}},
    pageref="phase-2-consented", _resourceType="websocket",
    _webSocketMessages=[
      {"type": "send", "time": 1714557611.25, "opcode": 1, "data": "{\"imei\":\"490154203237518\"}"},
      {"type": "receive", "time": 1714557611.5, "opcode": 2, "data": base64.b64encode(b'{"email":"tester@example.com"}').decode()},
      {"type": "sideways", "time": 1714557611.6, "opcode": 1, "data": "?"}]),
  e("2024-05-01T10:00:21.000Z",
    req("GET", "http://mi.gdt.qq.com/gdt_mview.fcg?adid=38400000-8cf0-11bd-b23e-10b96e40000d"),
    {"status": 0, "statusText": "", "httpVersion": "", "headers": [], "cookies": [], "content": {}, "redirectURL": "", "headersSize": -1, "bodySize": -1, "_transferSize": 0, "_error": "net::ERR_CONNECTION_REFUSED"},
    pageref="phase-3-refused"),
  e("2024-05-01T10:00:22.000Z",
    req("POST", "http://sdk.open.phone.igexin.com/api.php", [("Content-Type", "text/plain")],
        postData={"mimeType": "text/plain", "text": "%%% not base64: email=tester@example.com %%%", "_encoding": "base64"}),
    pageref="phase-3-refused"),
  e("2024-05-01T10:00:23.000Z", req("GET", "http://nowhere.test/") | {"url": None}, pageref="phase-3-refused"),
  e("2024-05-01T09:59:59.500Z",
    req("GET", "http://api.shop-app.test/v1/config?android_id=3f8a2c1be47d9a05"),
    pageref="phase-1-pre-consent"),
]
har = {"log": {"version": "1.2", "creator": {"name": "leakscope test fixture", "version": "1"},
  "pages": [
    {"startedDateTime": "2024-05-01T09:59:50.000Z", "id": "phase-1-pre-consent", "title": "pre-consent (from 09:59:50)", "pageTimings": {}},
    {"startedDateTime": "2024-05-01T10:00:05.000Z", "id": "phase-2-consented", "title": "consented (from 10:00:05)", "pageTimings": {}},
    {"startedDateTime": "2024-05-01T10:00:20.000Z", "id": "phase-3-refused", "title": "refused (from 10:00:20)", "pageTimings": {}}],
  "entries": entries}}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handmade.har")
with open(out, "w") as f:
    json.dump(har, f, indent=1)
    f.write("\n")
