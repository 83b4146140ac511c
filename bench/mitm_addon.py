"""mitmproxy addon for bench/run: the comparison point for leakscope.

Searches every request's URL, headers and (decoded) body for the same
identifier forms leakscope searches (`loadgen forms` writes them, one
`identifier<TAB>hex` per line) and appends one JSON line per request with
hits to a file. Plain substring tests: simple, but each runs in C.

    mitmdump -s bench/mitm_addon.py --set bench_forms=forms.tsv --set bench_hits=hits.jsonl
"""

import json

from mitmproxy import ctx, http


class IdentifierSearch:
    def __init__(self):
        self.forms = []
        self.hits = None

    def load(self, loader):
        loader.add_option("bench_forms", str, "", "identifier<TAB>hex, one per line")
        loader.add_option("bench_hits", str, "", "file that hits are appended to")

    def configure(self, updated):
        if "bench_forms" in updated and ctx.options.bench_forms:
            with open(ctx.options.bench_forms, encoding="utf-8") as lines:
                self.forms = [
                    (identifier, bytes.fromhex(hexed))
                    for identifier, hexed in (line.rstrip("\n").split("\t") for line in lines)
                ]
        if "bench_hits" in updated and ctx.options.bench_hits:
            # Line-buffered: every hit is on disk when the proxy is stopped.
            self.hits = open(ctx.options.bench_hits, "a", encoding="utf-8", buffering=1)

    def request(self, flow: http.HTTPFlow):
        req = flow.request
        haystack = b"\n".join(
            [
                req.url.encode("utf-8", "surrogateescape"),
                b"\n".join(name + b": " + value for name, value in req.headers.fields),
                req.get_content(strict=False) or b"",
            ]
        )
        found = sorted({identifier for identifier, form in self.forms if form in haystack})
        if found and self.hits is not None:
            self.hits.write(json.dumps({"url": req.pretty_url, "identifiers": found}) + "\n")


addons = [IdentifierSearch()]
