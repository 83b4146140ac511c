"""The origin server behind mitmproxy for tests/scan/mitmproxy-hardump.sh.

Plain HTTP on 127.0.0.1, a free port written to the file named by argv[1].
Routes:
  GET  /collect   JSON {"ok": true}
  POST /profile   echoes the request body back as JSON
  POST /form      {"saved": true}
  GET  /gzip      gzip-compressed JSON holding an IMEI (Content-Encoding: gzip)
  GET  /blob      binary bytes (mitmproxy exports them base64)
Stops on SIGTERM.
"""

import gzip
import http.server
import sys

GZIP_JSON = b'{"device":{"imei":"490154203237518","note":"gzip"}}'
# Bytes above 0x7e: what mitmproxy calls "mostly binary", exported as base64.
BLOB = bytes(range(0x80, 0x100)) * 8


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, body, content_type, extra=()):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/collect":
            self.reply(b'{"ok":true}', "application/json")
        elif path == "/gzip":
            self.reply(gzip.compress(GZIP_JSON), "application/json", [("Content-Encoding", "gzip")])
        elif path == "/blob":
            self.reply(BLOB, "application/octet-stream")
        else:
            self.send_error(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        if path == "/profile":
            self.reply(body, "application/json")
        elif path == "/form":
            self.reply(b'{"saved":true}', "application/json")
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
