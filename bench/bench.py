"""labctl's benchmark: labctl, the AWS CLI loop of a workshop guide, and a careful boto3 script,
side by side, against a local EC2 server, optionally behind a proxy that adds a far region's
latency and enforces EC2's throttling buckets.

  python3 bench/bench.py [--quick] [--cli-1000] [--out FILE]

Prints a Markdown table (and writes it to --out). Every tool starts from an empty server.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# LABCTL_BIN runs another build (e.g. target/debug/labctl) for a quick look.
LABCTL = os.environ.get("LABCTL_BIN") or os.path.join(ROOT, "target", "release", "labctl")
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2"]
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
           AWS_EC2_METADATA_DISABLED="true", NO_COLOR="1")
ENV.pop("AWS_PROFILE", None)
ENV.pop("AWS_ENDPOINT_URL", None)


class Background:
    """A helper process that prints its port first and stops when its stdin closes."""

    def __init__(self, *argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.port = int(self.proc.stdout.readline())

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def http(url, method="GET"):
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=60) as r:
        return r.read()


def reset(server):
    """Empty the server and warm each region's backend (its first call costs seconds)."""
    http(server.url() + "/moto-api/reset", "POST")
    import boto3
    for region in REGIONS:
        boto3.client("ec2", endpoint_url=server.url(), region_name=region,
                     aws_access_key_id="b", aws_secret_access_key="b").describe_key_pairs()


def timed(argv, cwd):
    """Run a command; return (seconds, peak KiB, stdout)."""
    report = tempfile.mktemp()
    start = time.monotonic()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report, *argv], cwd=cwd, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - start
    with open(report) as f:
        peak = int(f.read().strip().splitlines()[-1])
    os.unlink(report)
    if done.returncode not in (0, 1):
        sys.exit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, peak, done.stdout


def items(n, regions):
    return [(regions[i % len(regions)], f"bench-{i:05d}") for i in range(n)]


def manifest(n, regions):
    lines = ["version: 1", "project: bench", "defaults:", "  key_type: ed25519", "keypairs:"]
    per = n // len(regions)
    for r, region in enumerate(regions):
        lines += [f"  - name: bench-{region}-${{index}}", f"    count: {per}", f"    region: {region}",
                  f"    output: keys/{region}/${{index}}.pem"]
    return "\n".join(lines) + "\n"


def calls_text(calls):
    return ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) or "-"


def run_labctl(endpoint, work, n, regions, throttled):
    with open(os.path.join(work, "labctl.yaml"), "w") as f:
        f.write(manifest(n, regions))
    # labctl's default flags in every scenario: what users run.
    flags = ["--endpoint-url", endpoint, "--json", "-q"]
    rows = {}
    for workload, argv, repeat in [("apply from empty", ["apply"], 1), ("re-apply", ["apply"], 3), ("plan", ["plan"], 3)]:
        runs = [timed([LABCTL, *argv, *flags], work) for _ in range(repeat)]
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        doc = json.loads(runs[-1][2])
        failed = doc["summary"].get("failed", 0) + doc["summary"].get("conflict", 0)
        rows[workload] = (seconds, peak, doc["api_calls"], failed)
    return rows


def run_script(kind, endpoint, work, n, regions):
    pairs = [f"{r}:{name}" for r, name in items(n, regions)]
    out = os.path.join(work, "keys")
    if kind == "boto3":
        base = [sys.executable, os.path.join(ROOT, "bench", "boto3_keys.py"), endpoint, out]
    else:
        base = ["bash", os.path.join(ROOT, "bench", "cli_loop.sh"), endpoint, out]
    rows = {}
    # The read-only check is the median of 3 runs (1 for the slow AWS CLI loop).
    for workload, mode, repeat in [("apply from empty", "apply", 1), ("re-apply", "check", 1 if kind == "cli" else 3)]:
        runs = [timed([*base, mode, *pairs], work) for _ in range(repeat)]
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        doc = json.loads(runs[-1][2].strip().splitlines()[-1])
        rows[workload] = (seconds, peak, doc["calls"], doc.get("failed", 0))
    rows["plan"] = rows["re-apply"]
    return rows


def bucket_minimum(n, regions):
    per = n // len(regions)
    return max(0.0, (per - 50) / 5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="N=100 only")
    ap.add_argument("--cli-1000", action="store_true", help="also run the AWS CLI loop at N=1000 (about 20 minutes)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.md"))
    ap.add_argument("--only", help="run one scenario, N:REGIONS:direct|throttled|eventual (e.g. 1000:4:throttled)")
    opts = ap.parse_args()
    if not os.path.exists(LABCTL):
        sys.exit("build labctl first: cargo build --release")
    server = Background(sys.executable, os.path.join(ROOT, "tests", "it", "moto_server.py"))
    lines = []
    started = time.monotonic()
    try:
        # kind: "direct" (the server itself), "throttled" (50 ms a request and EC2's token
        # buckets), "eventual" (the same, and a listing that lags 3 s behind creates and deletes).
        scenarios = [(n, r, k) for n in ([100] if opts.quick else [100, 1000]) for r in (2, 4)
                     for k in ("direct", "throttled")]
        if not opts.quick:
            scenarios += [(200, 2, "throttled"), (200, 2, "eventual"), (1000, 4, "eventual")]
        if opts.only:
            n, r, kind = opts.only.split(":")
            scenarios = [(int(n), int(r), kind)]
        for n, r, kind in scenarios:
            throttled = kind != "direct"
            regions = REGIONS[:r]
            extra = ["--eventual", "3000"] if kind == "eventual" else []
            proxy = Background(sys.executable, os.path.join(ROOT, "bench", "ec2_proxy.py"), server.url(),
                               "--delay-ms", "50", "--throttle", *extra) if throttled else None
            endpoint = proxy.url() if proxy else server.url()
            tools = ["labctl", "boto3"]
            if not throttled and r == 2 and (n == 100 or opts.cli_1000):
                tools.append("aws cli")
            results = {}
            for tool in tools:
                reset(server)
                work = tempfile.mkdtemp(prefix="labctl-bench-")
                try:
                    if tool == "labctl":
                        results[tool] = run_labctl(endpoint, work, n, regions, throttled)
                    else:
                        results[tool] = run_script("boto3" if tool == "boto3" else "cli", endpoint, work, n, regions)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                print(f"done: N={n} regions={r} {kind} {tool}", file=sys.stderr, flush=True)
            if proxy:
                proxy.stop()
            where = {"direct": "direct", "throttled": "50 ms + EC2 throttling",
                     "eventual": "50 ms + throttling + 3 s listing lag"}[kind]
            for workload in ["apply from empty", "re-apply", "plan"]:
                cells = []
                for tool in ["labctl", "boto3", "aws cli"]:
                    if tool not in results:
                        cells.append("-")
                        continue
                    seconds, peak, calls, failed = results[tool][workload]
                    extra = f", {failed} failed" if failed else ""
                    cells.append(f"{seconds:.2f} s, {peak / 1024:.0f} MB, {calls_text(calls)}{extra}")
                note = ""
                if throttled and workload == "apply from empty":
                    note = f"bucket minimum {bucket_minimum(n, regions):.0f} s"
                lines.append(f"| {n} | {r} | {where} | {workload} | " + " | ".join(cells) + f" | {note} |")

        # Validate a 10,000-entry manifest.
        work = tempfile.mkdtemp(prefix="labctl-bench-")
        with open(os.path.join(work, "big.yaml"), "w") as f:
            f.write("version: 1\nproject: big\ndefaults: { region: us-east-1 }\nkeypairs:\n")
            for i in range(10000):
                f.write(f"  - name: big-{i:05d}\n    tags: {{ Seat: \"{i}\" }}\n")
        seconds, peak, _ = timed([LABCTL, "validate", "big.yaml"], work)
        shutil.rmtree(work, ignore_errors=True)
        lines.append(f"| 10,000 entries | - | - | validate | {seconds:.2f} s, {peak / 1024:.0f} MB | - | - | |")
    finally:
        server.stop()

    version = []
    for _ in range(21):
        start = time.monotonic()
        subprocess.run([LABCTL, "--version"], stdout=subprocess.DEVNULL, check=True)
        version.append(time.monotonic() - start)
    header = [
        f"Run on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, in {time.monotonic() - started:.0f} s.",
        f"`labctl --version`: median {statistics.median(version) * 1000:.1f} ms over 21 runs; "
        f"binary {os.path.getsize(LABCTL) / 1e6:.1f} MB.",
        "",
        "Each cell: wall time (re-apply and plan: the median of 3 runs), peak memory, requests sent.",
        "",
        "| N | regions | server | workload | labctl | boto3, 8 threads | AWS CLI loop | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    with open(opts.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
