#!/usr/bin/env python3
"""Measures proxy throughput for bench/run; see that script for the setup.

Four configurations take turns on every workload: the load generator
straight to the origin, hudsucker's no-op proxy, leakscope `run` with the
example profile (all detectors, HAR and findings written), and mitmdump
with an addon searching the same identifier forms. Each repetition starts
every proxy afresh and runs each workload once per configuration, in an
order rotated from one repetition to the next; the table gives medians.

The load generator and the origin share core 0, the proxy has core 1, so
the proxy's figures are those of one core. Proxy CPU per request comes
from /proc/<pid>/stat (user + system time of all its threads), which the
load generator reads when its clock starts and once the proxy has settled
after the last response; peak RSS is VmHWM.
"""

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = ["direct", "hudsucker", "leakscope", "mitmdump"]
PROXIES = CONFIGS[1:]
# A load run that takes longer than this is stuck, not slow (runs stop
# starting requests after their own cap).
RUN_TIMEOUT = 120
READY_TIMEOUT = 30


class BenchError(Exception):
    pass


class Cell:
    """One workload: what is requested, how, and how many times."""

    def __init__(self, workload, scheme, conns, requests, new_conn=False, mitm_cap=3.0):
        self.workload, self.scheme, self.conns = workload, scheme, conns
        self.requests, self.new_conn = requests, new_conn
        # mitmdump is an order of magnitude slower: it gets this many seconds
        # (None: the full request count, like everyone else).
        self.mitm_cap = mitm_cap

    def name(self):
        mode = "new conn" if self.new_conn else "keep-alive"
        return f"{self.scheme.upper()} {self.workload} c={self.conns} {mode}"


def matrix(scale):
    n = lambda count: max(20, int(count * scale))  # noqa: E731
    # Downloads last: leakscope's HAR keeps each 1 MiB body, and the HAR
    # rewrites that follow should not land in the small-request runs.
    return [
        Cell("small", "http", 1, n(1000)),
        Cell("small", "http", 16, n(5000)),
        Cell("small", "http", 64, n(5000)),
        Cell("small", "https", 1, n(1000)),
        Cell("small", "https", 16, n(2000), mitm_cap=None),
        Cell("small", "https", 64, n(5000)),
        Cell("post", "http", 16, n(2000)),
        Cell("post", "https", 16, n(2000)),
        Cell("small", "http", 16, n(1000), new_conn=True),
        Cell("small", "https", 16, n(500), new_conn=True),
        Cell("download", "http", 16, n(40)),
        Cell("download", "https", 16, n(40)),
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args[3]} exited at start:\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{proc.args[3]} did not listen on {port} within {READY_TIMEOUT}s:\n{tail(log)}")


def tail(path, lines=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Proxy:
    """A proxy process pinned to core 1."""

    def __init__(self, name, argv, port, log):
        self.name, self.port, self.log = name, port, log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                ["taskset", "-c", "1", *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wait_port(port, self.proc, log)

    def pid(self):
        """The process id (taskset execs the proxy), once it is known alive."""
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} died:\n{tail(self.log)}")
        return self.proc.pid

    def peak_rss_mib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise BenchError(f"no VmHWM for {self.name}")

    def stop(self):
        if self.proc.poll() is None:
            # SIGTERM lets leakscope close its HAR and findings cleanly.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work)
        self.bin = Path(args.bin_dir)
        self.loadgen = str(self.bin / "examples" / "loadgen")
        self.profile = str(Path(args.repo) / "detectors" / "example-profile.toml")
        self.http_port, self.https_port = free_port(), free_port()
        self.origin_ca = self.work / "origin-ca.pem"
        self.ca_dir = self.work / "ca"
        self.proxies = {}
        self.children = []
        self.detections = {}

    # -- setup ---------------------------------------------------------------

    def start_origin(self):
        log = self.work / "origin.log"
        with open(log, "ab") as err:
            proc = subprocess.Popen(
                ["taskset", "-c", "0", self.loadgen, "origin", "--http", str(self.http_port),
                 "--https", str(self.https_port), "--ca-out", str(self.origin_ca)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )
        self.children.append(proc)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.origin_ca.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the origin did not start:\n{tail(log)}")
            time.sleep(0.05)

    def prepare(self):
        run([str(self.bin / "leakscope"), "ca", "init", "--certs", str(self.ca_dir)])
        forms = run([self.loadgen, "forms", "--profile", self.profile]).stdout
        (self.work / "forms.tsv").write_text(forms)
        # mitmproxy signs with the same CA (key and certificate in one file),
        # so every proxy issues ECDSA P-256 leaves from the same key type.
        mitm = self.work / "mitm"
        mitm.mkdir(exist_ok=True)
        key = (self.ca_dir / "leakscope-ca-key.pem").read_text()
        cert = (self.ca_dir / "leakscope-ca.pem").read_text()
        target = mitm / "mitmproxy-ca.pem"
        target.write_text(key + cert)
        target.chmod(0o600)
        self.start_origin()

    def ca_for(self, config):
        if config == "direct":
            return self.origin_ca
        return self.ca_dir / "leakscope-ca.pem"

    def start_proxy(self, name, tag, lazy=False):
        port = free_port()
        log = self.work / f"{name}-{tag}.log"
        listen = f"127.0.0.1:{port}"
        if name == "hudsucker":
            argv = [str(self.bin / "examples" / "noop_proxy"), "--listen", listen,
                    "--ca-cert", str(self.ca_dir / "leakscope-ca.pem"),
                    "--ca-key", str(self.ca_dir / "leakscope-ca-key.pem"),
                    "--upstream-ca", str(self.origin_ca)]
        elif name == "leakscope":
            out = self.work / f"leakscope-out-{tag}"
            argv = [str(self.bin / "leakscope"), "run", "--listen", listen,
                    "--certs", str(self.ca_dir), "--upstream-ca", str(self.origin_ca),
                    "--profile", self.profile, "--out", str(out), "--control", "off"]
        else:
            argv = [self.args.mitmdump, "--listen-host", "127.0.0.1", "--listen-port", str(port),
                    "--set", f"confdir={self.work / 'mitm'}",
                    "--set", f"ssl_verify_upstream_trusted_ca={self.origin_ca}",
                    "-s", str(Path(self.args.repo) / "bench" / "mitm_addon.py"),
                    "--set", f"bench_forms={self.work / 'forms.tsv'}",
                    "--set", f"bench_hits={self.work / f'mitm-hits-{tag}.jsonl'}"]
            if lazy:
                # First contact without dialling the (unresolvable) host first.
                argv += ["--set", "connection_strategy=lazy"]
        return Proxy(name, argv, port, log)

    # -- measuring -------------------------------------------------------------

    def load(self, cell, config, requests=None, cap=None):
        scheme_port = self.https_port if cell.scheme == "https" else self.http_port
        argv = ["taskset", "-c", "0", self.loadgen, "load",
                "--url", f"{cell.scheme}://localhost:{scheme_port}",
                "--ca", str(self.ca_for(config)), "--workload", cell.workload,
                "--conns", str(cell.conns), "--requests", str(requests or cell.requests),
                "--profile", self.profile]
        if cap is not None:
            argv += ["--max-seconds", str(cap)]
        if cell.new_conn:
            argv.append("--new-conn")
        proxy = self.proxies.get(config)
        if proxy:
            argv += ["--proxy", f"127.0.0.1:{proxy.port}", "--proxy-pid", str(proxy.pid())]
        result = run(argv, timeout=RUN_TIMEOUT, what=f"{cell.name()} via {config}")
        return with_cpu(json.loads(result.stdout.strip().splitlines()[-1]))

    def warm_up(self):
        for config in CONFIGS:
            for scheme in ("http", "https"):
                self.load(Cell("small", scheme, 2, 20), config)

    def repetition(self, rep, cells, results, rss):
        tag = f"rep{rep}"
        self.proxies = {name: self.start_proxy(name, tag) for name in PROXIES}
        try:
            self.warm_up()
            order = CONFIGS[rep % 4:] + CONFIGS[: rep % 4]
            for cell in cells:
                for config in order:
                    cap = cell.mitm_cap if config == "mitmdump" else None
                    line = self.load(cell, config, cap=cap)
                    results.setdefault((cell.name(), config), []).append(line)
                    progress(f"rep {rep + 1}: {cell.name():32} {config:10} "
                             f"{line['rps']:9.0f} req/s  p99 {line['p99_ms']:7.2f} ms")
            for name, proxy in self.proxies.items():
                rss[name] = max(rss.get(name, 0), proxy.peak_rss_mib())
        finally:
            for proxy in self.proxies.values():
                proxy.stop()
            self.proxies = {}
        self.check_detections(tag)

    def check_detections(self, tag):
        """Both detecting proxies must have found the identifiers in the POSTs:
        a proxy that silently stopped looking would win unfairly."""
        findings = self.work / f"leakscope-out-{tag}" / "findings.jsonl"
        hits = self.work / f"mitm-hits-{tag}.jsonl"
        for path, who in ((findings, "leakscope"), (hits, "mitmdump")):
            if not path.exists() or path.stat().st_size == 0:
                raise BenchError(f"{who} reported no identifiers ({path} is empty)")
        self.detections = {"leakscope findings": count_lines(findings),
                           "mitmdump hits": count_lines(hits)}
        # The evidence of a repetition is large (the HAR keeps every 1 MiB
        # body) and has served its purpose.
        subprocess.run(["rm", "-rf", str(findings.parent)], check=True)

    def handshakes(self):
        rows = {}
        for name in PROXIES:
            proxy = self.start_proxy(name, "handshakes", lazy=True)
            try:
                argv = ["taskset", "-c", "0", self.loadgen, "handshakes",
                        "--proxy", f"127.0.0.1:{proxy.port}", "--proxy-pid", str(proxy.pid()),
                        "--target", f"127.0.0.1:{self.https_port}",
                        "--ca", str(self.ca_for(name)), "--hosts", str(self.args.hosts),
                        "--conns", "16"]
                result = run(argv, timeout=RUN_TIMEOUT, what=f"handshakes via {name}")
                line = with_cpu(json.loads(result.stdout.strip().splitlines()[-1]))
                line["rss"] = proxy.peak_rss_mib()
                rows[name] = line
                progress(f"handshakes: {name:10} {line['rps']:7.0f}/s")
            finally:
                proxy.stop()
        return rows

    def cleanup(self):
        for proxy in self.proxies.values():
            proxy.stop()
        for child in self.children:
            child.terminate()
            child.wait()


def run(argv, timeout=60, what=None):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what or argv[0]}: no result within {timeout}s") from None
    if result.returncode != 0:
        raise BenchError(f"{what or ' '.join(argv[:3])} failed:\n{result.stdout}{result.stderr}")
    return result


def with_cpu(line):
    """Adds the proxy's CPU per request and how busy its core was."""
    cpu = line.get("proxy_cpu_s")
    if cpu is not None:
        line["cpu_us"] = cpu * 1e6 / max(line["requests"], 1)
        line["cpu_busy"] = cpu / line["seconds"]
    return line


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def progress(text):
    print(text, file=sys.stderr, flush=True)


def load_average():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def median(lines, key):
    return statistics.median(line[key] for line in lines)


def ratio(value, base):
    """value / base; None when a run was too short for the CPU clock (10 ms ticks)."""
    return value / base if base else None


def fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


# -- report --------------------------------------------------------------------


def table(cells, results):
    out = ["| Workload | Config | req/s | MiB/s | p50 ms | p99 ms | p99.9 ms "
           "| proxy CPU µs/req | proxy core busy | req/s vs hudsucker | CPU vs hudsucker |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for cell in cells:
        base = results[(cell.name(), "hudsucker")]
        for config in CONFIGS:
            lines = results[(cell.name(), config)]
            cpu = median(lines, "cpu_us") if config != "direct" else None
            busy = median(lines, "cpu_busy") * 100 if config != "direct" else None
            rps_ratio = cpu_ratio = None
            if config not in ("direct", "hudsucker"):
                rps_ratio = median(lines, "rps") / median(base, "rps") * 100
                cpu_ratio = ratio(cpu, median(base, "cpu_us"))
            note = " (capped)" if any(line["truncated"] for line in lines) else ""
            out.append(
                f"| {cell.name()} | {config}{note} | {fmt(median(lines, 'rps'), 0)} "
                f"| {fmt(median(lines, 'mib_s'), 2)} | {fmt(median(lines, 'p50_ms'), 2)} "
                f"| {fmt(median(lines, 'p99_ms'), 2)} | {fmt(median(lines, 'p999_ms'), 2)} "
                f"| {fmt(cpu, 0)} | {fmt(busy, 0)}{'%' if busy is not None else ''} "
                f"| {fmt(rps_ratio, 0)}{'%' if rps_ratio is not None else ''} "
                f"| {fmt(cpu_ratio, 2)}{'×' if cpu_ratio is not None else ''} |")
    return out


def targets(cells, results, rss):
    """The issue's targets, each with the figure that decides it."""
    get = lambda cell, config, key: median(results[(cell.name(), config)], key)  # noqa: E731
    rps = [(get(c, "leakscope", "rps") / get(c, "hudsucker", "rps"), c.name()) for c in cells]
    cpu = [(ratio(get(c, "leakscope", "cpu_us"), get(c, "hudsucker", "cpu_us")) or 0, c.name())
           for c in cells]
    p99 = [(get(c, "leakscope", "p99_ms") - get(c, "hudsucker", "p99_ms"), c.name())
           for c in cells if c.conns == 16 and c.workload != "download"]
    small_tls = [c for c in cells if c.scheme == "https" and c.workload == "small"]
    vs_mitm = [(get(c, "leakscope", "rps") / get(c, "mitmdump", "rps"), c.name()) for c in small_tls]
    p99_mitm = [(get(c, "leakscope", "p99_ms"), get(c, "mitmdump", "p99_ms"), c.name())
                for c in small_tls]
    worst = lambda pairs, key: key(pairs)  # noqa: E731
    lines = [
        f"- leakscope throughput ≥ 90% of hudsucker: lowest "
        f"{worst(rps, min)[0] * 100:.0f}% ({worst(rps, min)[1]}), median "
        f"{statistics.median(r for r, _ in rps) * 100:.0f}%; below 90% in "
        f"{sum(r < 0.9 for r, _ in rps)} of {len(rps)} workloads.",
        f"- leakscope CPU per request ≤ 1.2× hudsucker: highest "
        f"{worst(cpu, max)[0]:.2f}× ({worst(cpu, max)[1]}), median "
        f"{statistics.median(r for r, _ in cpu):.2f}×; above 1.2× in "
        f"{sum(r > 1.2 for r, _ in cpu)} of {len(cpu)} workloads.",
        f"- p99 added by leakscope at c=16 (< 1 ms): "
        + ", ".join(f"{name} {delta:+.2f} ms" for delta, name in p99) + ".",
        f"- leakscope ≥ 10× mitmdump on HTTPS small requests: "
        + ", ".join(f"{name} {ratio:.1f}×" for ratio, name in vs_mitm) + "; p99 "
        + ", ".join(f"{name} {ours:.2f} vs {theirs:.2f} ms" for ours, theirs, name in p99_mitm)
        + f"; peak RSS {rss['leakscope']:.0f} vs {rss['mitmdump']:.0f} MiB.",
    ]
    return lines


def handshake_table(rows):
    out = ["| Proxy | handshakes/s | p50 ms | p99 ms | proxy CPU µs/handshake "
           "| proxy core busy | peak RSS MiB |", "|---|--:|--:|--:|--:|--:|--:|"]
    for name, line in rows.items():
        out.append(f"| {name} | {line['rps']:,.0f} | {line['p50_ms']:.2f} | {line['p99_ms']:.2f} "
                   f"| {line['cpu_us']:,.0f} | {line['cpu_busy'] * 100:.0f}% | {line['rss']:.0f} |")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--bin-dir", required=True, help="cargo's release directory")
    parser.add_argument("--work", required=True, help="scratch directory")
    parser.add_argument("--mitmdump", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies request counts")
    parser.add_argument("--hosts", type=int, default=1000, help="host names for the handshakes")
    parser.add_argument("--out", required=True, help="markdown file for the results")
    parser.add_argument("--describe", default="", help="the build measured (git describe)")
    args = parser.parse_args()
    # Stopped from outside: still stop the proxies (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    bench = Bench(args)
    cells = matrix(args.scale)
    results, rss = {}, {}
    started = time.monotonic()
    load_before = load_average()
    try:
        bench.prepare()
        for rep in range(args.reps):
            bench.repetition(rep, cells, results, rss)
        handshakes = bench.handshakes() if args.hosts else {}
    finally:
        bench.cleanup()
    mitm_version = run([args.mitmdump, "--version"]).stdout.splitlines()[0]
    report = [
        f"Measured by `bench/run` on {time.strftime('%Y-%m-%d')}"
        + (f" at `{args.describe}`" if args.describe else "") + ": "
        f"{os.cpu_count()} CPUs ({cpu_model()}), load average {load_before} before and "
        f"{load_average()} after; {args.reps} repetitions, medians; "
        f"{mitm_version}; {time.monotonic() - started:.0f} s.",
        "",
        "Load generator and origin on core 0, proxy on core 1. \"proxy core busy\" is the "
        "proxy's CPU time over the run's wall time (100% = the core was saturated). "
        "\"(capped)\": mitmdump ran for a fixed time instead of the full request count.",
        "",
        *table(cells, results),
        "",
        f"Peak RSS (VmHWM, MiB, highest of the repetitions): "
        + ", ".join(f"{name} {value:.0f}" for name, value in rss.items())
        + f". Detections in the last repetition: "
        + ", ".join(f"{k} {v}" for k, v in bench.detections.items()) + ".",
        "",
        "Targets:",
        "",
        *targets(cells, results, rss),
    ]
    if handshakes:
        report += ["", f"First-contact TLS through the proxy: {args.hosts} distinct host names, "
                   "16 concurrent, cold certificate cache (mitmdump with "
                   "`connection_strategy=lazy`, so none dials upstream first).", "",
                   *handshake_table(handshakes)]
    Path(args.out).write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    try:
        main()
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        sys.exit(1)
