"""labctl's benchmark: labctl, the AWS CLI loop of a workshop guide, and a careful boto3 script,
side by side, against a local EC2 server, optionally behind a proxy that adds a far region's
latency and enforces EC2's throttling buckets.

  python3 bench/bench.py [--quick] [--cli-1000] [--out FILE] [--only N:REGIONS:MODE[:Aaccounts]]
                         [--tools labctl,boto3,cli] [--store]

With `:10accounts` (`--only 1000:1:throttled:10accounts`) the key pairs are spread over 10
accounts (ids 100000000001..100000000010) reached by AssumeRole into each one's
OrganizationAccountAccessRole, and the proxy keeps EC2's buckets per account (`--per-account`).

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
# `--store`: labctl's manifests keep every private key in SSM too (team mode).
STORE = False
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2"]
# The many-accounts scenarios: account A's alias and id (a01 is 100000000001, ...).
FIRST_ACCOUNT = 100000000001
ROLE = "arn:aws:iam::{}:role/OrganizationAccountAccessRole"
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


def accounts_of(count):
    """[(alias, id)] of the scenario's accounts: a01 100000000001, a02 100000000002, ..."""
    return [(f"a{a + 1:02d}", str(FIRST_ACCOUNT + a)) for a in range(count)]


def reset(server, accounts=(), regions=()):
    """Empty the server and warm each region's backend (its first call costs seconds), and
    each account's in the given regions (through its role, as the tools reach it)."""
    http(server.url() + "/moto-api/reset", "POST")
    import boto3
    for region in REGIONS:
        boto3.client("ec2", endpoint_url=server.url(), region_name=region,
                     aws_access_key_id="b", aws_secret_access_key="b").describe_key_pairs()
    if not accounts:
        return
    sts = boto3.client("sts", endpoint_url=server.url(), region_name="us-east-1",
                       aws_access_key_id="b", aws_secret_access_key="b")
    for _, account in accounts:
        found = sts.assume_role(RoleArn=ROLE.format(account), RoleSessionName="warm")["Credentials"]
        for region in regions:
            boto3.client("ec2", endpoint_url=server.url(), region_name=region,
                         aws_access_key_id=found["AccessKeyId"], aws_secret_access_key=found["SecretAccessKey"],
                         aws_session_token=found["SessionToken"]).describe_key_pairs()


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


def account_items(n, regions, accounts):
    """(account id, region, name) of N key pairs spread evenly over accounts and regions, the
    names as in account_manifest, in an order that goes round the accounts and regions."""
    per = n // (len(regions) * len(accounts))
    return [(account, region, account_name(alias, region, regions, index))
            for index in range(1, per + 1) for region in regions for alias, account in accounts]


def account_name(alias, region, regions, index):
    # Names unique in their account and region; the region in them only when there are several.
    return f"k-{alias}-{region}-{index}" if len(regions) > 1 else f"k-{alias}-{index}"


def account_manifest(n, regions, accounts):
    """labctl's manifest of N key pairs over the accounts (each reached through its
    OrganizationAccountAccessRole, labctl's default) and the regions: one entry per pair."""
    per = n // (len(regions) * len(accounts))
    lines = ["version: 1", "project: bench", "accounts:"]
    lines += [f'  {alias}: {{ id: "{account}" }}' for alias, account in accounts]
    if len(regions) == 1:
        lines += [f"defaults: {{ region: {regions[0]}, key_type: ed25519 }}", "keypairs:"]
    else:
        lines += ["defaults: { key_type: ed25519 }", "keypairs:"]
    for alias, _ in accounts:
        for region in regions:
            lines += [f"  - name: {account_name(alias, region, regions, '${index}')}",
                      f"    count: {per}", f"    account: {alias}"]
            if len(regions) > 1:
                lines.append(f"    region: {region}")
    return "\n".join(lines) + "\n"


def manifest(n, regions):
    lines = ["version: 1", "project: bench", "defaults:", "  key_type: ed25519", "keypairs:"]
    per = n // len(regions)
    for r, region in enumerate(regions):
        lines += [f"  - name: bench-{region}-${{index}}", f"    count: {per}", f"    region: {region}",
                  f"    output: keys/{region}/${{index}}.pem"]
    return "\n".join(lines) + "\n"


def calls_text(calls):
    return ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) or "-"


def proxy_counts(proxy):
    """(throttled answers, requests) the proxy has seen so far; None without a proxy."""
    if proxy is None:
        return None
    stats = json.loads(http(proxy.url() + "/__proxy/stats"))
    return stats["throttled"], sum(stats["requests"].values())


def measured(proxy, runs_of):
    """Run a workload's runs; return them and what the proxy saw per run (throttled, requests)."""
    before = proxy_counts(proxy)
    runs = runs_of()
    after = proxy_counts(proxy)
    seen = None
    if before is not None:
        seen = tuple((a - b) / len(runs) for a, b in zip(after, before))
    return runs, seen


def run_labctl(endpoint, work, n, regions, throttled, accounts=(), proxy=None):
    with open(os.path.join(work, "labctl.yaml"), "w") as f:
        f.write(account_manifest(n, regions, accounts) if accounts else manifest(n, regions))
        if STORE:
            # Team mode: every private key also kept in SSM Parameter Store.
            f.write("store: ssm\n")
    # labctl's default flags in every scenario: what users run.
    flags = ["--endpoint-url", endpoint, "--json", "-q"]
    rows = {}
    for workload, argv, repeat in [("apply from empty", ["apply"], 1), ("re-apply", ["apply"], 3), ("plan", ["plan"], 3)]:
        runs, seen = measured(proxy, lambda: [timed([LABCTL, *argv, *flags], work) for _ in range(repeat)])
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        doc = json.loads(runs[-1][2])
        if "summary" not in doc:
            # A manifest this labctl does not take (e.g. `accounts:` before it knew them).
            sys.exit(f"labctl refused the manifest: {json.dumps(doc.get('diagnostics', doc))[:2000]}")
        failed = doc["summary"].get("failed", 0) + doc["summary"].get("conflict", 0)
        rows[workload] = (seconds, peak, doc["api_calls"], failed, seen)
    return rows


def run_script(kind, endpoint, work, n, regions, accounts=(), proxy=None):
    out = os.path.join(work, "keys")
    if accounts:
        pairs = [f"{a}:{r}:{name}" for a, r, name in account_items(n, regions, accounts)]
        base = [sys.executable, os.path.join(ROOT, "bench", "boto3_accounts.py"), endpoint, out]
    elif kind == "boto3":
        pairs = [f"{r}:{name}" for r, name in items(n, regions)]
        base = [sys.executable, os.path.join(ROOT, "bench", "boto3_keys.py"), endpoint, out]
    else:
        pairs = [f"{r}:{name}" for r, name in items(n, regions)]
        base = ["bash", os.path.join(ROOT, "bench", "cli_loop.sh"), endpoint, out]
    rows = {}
    # The read-only check is the median of 3 runs (1 for the slow AWS CLI loop).
    for workload, mode, repeat in [("apply from empty", "apply", 1), ("re-apply", "check", 1 if kind == "cli" else 3)]:
        runs, seen = measured(proxy, lambda: [timed([*base, mode, *pairs], work) for _ in range(repeat)])
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        doc = json.loads(runs[-1][2].strip().splitlines()[-1])
        rows[workload] = (seconds, peak, doc["calls"], doc.get("failed", 0), seen)
    rows["plan"] = rows["re-apply"]
    return rows


def bucket_minimum(n, regions, accounts=1):
    """The least time EC2's CreateKeyPair buckets allow (burst 50, 5 a second), each account's
    and region's bucket draining in parallel; AssumeRole costs nothing here."""
    per = n // (len(regions) * accounts)
    return max(0.0, (per - 50) / 5)


def scenario(text):
    """N:REGIONS:MODE or N:REGIONS:MODE:Aaccounts -> (n, regions, mode, accounts)."""
    parts = text.split(":")
    if len(parts) not in (3, 4) or (len(parts) == 4 and not parts[3].endswith("accounts")):
        sys.exit(f"--only {text}: expected N:REGIONS:direct|throttled|eventual[:Aaccounts]")
    n, r, kind = parts[:3]
    accounts = int(parts[3][: -len("accounts")]) if len(parts) == 4 else 1
    return int(n), int(r), kind, accounts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="N=100 only")
    ap.add_argument("--cli-1000", action="store_true", help="also run the AWS CLI loop at N=1000 (about 20 minutes)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.md"))
    ap.add_argument("--only", help="run one scenario, N:REGIONS:direct|throttled|eventual[:Aaccounts] "
                                   "(e.g. 1000:4:throttled, 1000:1:throttled:10accounts)")
    ap.add_argument("--tools", default="labctl,boto3,cli",
                    help="the tools to run, of labctl,boto3,cli (default: all; the AWS CLI loop "
                         "runs only where it always did, never over many accounts)")
    ap.add_argument("--store", action="store_true",
                    help="labctl with `store: ssm` (every private key also kept in SSM)")
    opts = ap.parse_args()
    global STORE
    STORE = opts.store
    tools_asked = opts.tools.split(",")
    if "labctl" in tools_asked and not os.path.exists(LABCTL):
        sys.exit("build labctl first: cargo build --release")
    server = Background(sys.executable, os.path.join(ROOT, "tests", "it", "moto_server.py"))
    lines = []
    started = time.monotonic()
    try:
        # kind: "direct" (the server itself), "throttled" (50 ms a request and EC2's token
        # buckets), "eventual" (the same, and a listing that lags 3 s behind creates and deletes).
        scenarios = [(n, r, k, 1) for n in ([100] if opts.quick else [100, 1000]) for r in (2, 4)
                     for k in ("direct", "throttled")]
        if not opts.quick:
            scenarios += [(200, 2, "throttled", 1), (200, 2, "eventual", 1), (1000, 4, "eventual", 1)]
        if opts.only:
            scenarios = [scenario(opts.only)]
        for n, r, kind, a in scenarios:
            throttled = kind != "direct"
            regions = REGIONS[:r]
            # One account is the caller's own (no AssumeRole); several are a01.. through their roles.
            accounts = accounts_of(a) if a > 1 else []
            extra = ["--eventual", "3000"] if kind == "eventual" else []
            if accounts:
                extra.append("--per-account")
            proxy = Background(sys.executable, os.path.join(ROOT, "bench", "ec2_proxy.py"), server.url(),
                               "--delay-ms", "50", "--throttle", *extra) if throttled else None
            endpoint = proxy.url() if proxy else server.url()
            tools = [t for t in ["labctl", "boto3"] if t in tools_asked]
            if not throttled and not accounts and r == 2 and (n == 100 or opts.cli_1000) and "cli" in tools_asked:
                tools.append("aws cli")
            results = {}
            for tool in tools:
                reset(server, accounts, regions)
                work = tempfile.mkdtemp(prefix="labctl-bench-")
                try:
                    if tool == "labctl":
                        results[tool] = run_labctl(endpoint, work, n, regions, throttled, accounts, proxy)
                    else:
                        results[tool] = run_script("boto3" if tool == "boto3" else "cli", endpoint, work, n, regions,
                                                   accounts, proxy)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                print(f"done: N={n} regions={r} {kind} accounts={a} {tool}", file=sys.stderr, flush=True)
            if proxy:
                proxy.stop()
            where = {"direct": "direct", "throttled": "50 ms + EC2 throttling",
                     "eventual": "50 ms + throttling + 3 s listing lag"}[kind]
            if accounts:
                where += f", {a} accounts" + (" (buckets per account)" if throttled else "")
            minimum = bucket_minimum(n, regions, a)
            for workload in ["apply from empty", "re-apply", "plan"]:
                cells = []
                for tool in ["labctl", "boto3", "aws cli"]:
                    if tool not in results:
                        cells.append("-")
                        continue
                    seconds, peak, calls, failed, seen = results[tool][workload]
                    ratio = ""
                    extra = f", {failed} failed" if failed else ""
                    if accounts and seen is not None and workload == "apply from empty":
                        # Over many accounts the cell also says the ratio to the bucket minimum,
                        # the requests the proxy throttled (out of all it saw) and failed keys.
                        ratio = f" ({seconds / minimum:.2f}× the minimum)" if minimum else ""
                        share = 100 * seen[0] / seen[1] if seen[1] else 0.0
                        extra = f"; {seen[0]:.0f} throttled ({share:.1f}% of {seen[1]:.0f} requests), {failed} failed"
                    cells.append(f"{seconds:.2f} s{ratio}, {peak / 1024:.0f} MB, {calls_text(calls)}{extra}")
                note = ""
                if throttled and workload == "apply from empty":
                    note = f"bucket minimum {minimum:.0f} s"
                    if accounts:
                        note += " (each account's buckets in parallel)"
                lines.append(f"| {n} | {r} | {where} | {workload} | " + " | ".join(cells) + f" | {note} |")

        # Validate a 10,000-entry manifest.
        if "labctl" in tools_asked:
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

    version_line = []
    if "labctl" in tools_asked:
        version = []
        for _ in range(21):
            start = time.monotonic()
            subprocess.run([LABCTL, "--version"], stdout=subprocess.DEVNULL, check=True)
            version.append(time.monotonic() - start)
        version_line = [f"`labctl --version`: median {statistics.median(version) * 1000:.1f} ms over 21 runs; "
                        f"binary {os.path.getsize(LABCTL) / 1e6:.1f} MB."]
    header = [
        f"Run on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, in {time.monotonic() - started:.0f} s.",
        *version_line,
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
