"""A proxy in front of a local EC2 server, on loopback: latency, EC2's throttling, and faults.

  python3 bench/ec2_proxy.py UPSTREAM_URL [--delay-ms N] [--throttle [--per-account]] [--faults JSON]

Prints the port it listens on (127.0.0.1, a free port) on its first line and serves until its
standard input closes. Stdlib only.

--delay-ms N   adds N ms before each request is forwarded (a far region), STS requests too.
--throttle     enforces EC2's token buckets per (region, action), answering
               RequestLimitExceeded (HTTP 503) as EC2 does when a bucket is empty. STS
               requests (AssumeRole, GetCallerIdentity, or signed for the service `sts`) are
               never throttled and take no token.
--per-account  with --throttle: the buckets are per (access key id, region, action), both
               read from the request's Authorization header (Credential=AKID/DATE/REGION/...),
               as EC2 meters each account apart: each assumed role's temporary access key
               stands for its account, so ten accounts get ten sets of buckets. With
               --eventual, the listing lag is kept per access key id too.
--limits JSON  with --throttle: other buckets, {"Action": [burst, refill per second]}, for
               an account whose limits differ from EC2's published ones.
--eventual MS  EC2's eventual consistency: for MS milliseconds after a key pair is created
               or imported, DescribeKeyPairs does not list it; after one is deleted, it
               still lists it.
--faults JSON  a list of rules, each {"action": "CreateKeyPair" or "*", "fault": F,
               "count": N (how many matching requests get it; default 1), "skip": N (let the
               first N matching requests through untouched; default 0), "name": KEY NAME
               (optional: only requests for that key pair), "role": ROLE ARN (optional: only
               requests whose RoleArn is that role, e.g. {"action": "AssumeRole", "role":
               "arn:aws:iam::222222222222:role/OrganizationAccountAccessRole", "fault":
               "denied", "count": 1000}), "ms": N (for slow/hang)}, where F is
                 refuse   close the connection without an answer
                 hang     hold the request for `ms` ms (default 60000), then close
                 stall    forward the request (EC2 acts on it), then hold the answer for
                          `ms` ms (default 60000) and close without it
                 cut      forward the request, then close halfway through the answer
                 http500  answer HTTP 500 without forwarding
                 http503  answer HTTP 503 without forwarding
                 throttle answer RequestLimitExceeded without forwarding
                 denied   answer UnauthorizedOperation (HTTP 403) without forwarding; to an
                          STS request, STS's AccessDenied (HTTP 403) for the RoleArn
                 slow     forward after `ms` ms
                 race     first import the same key pair name (another machine's key), then forward
                 mangle   forward, then garble the key names and public keys in the answer
                 garble   forward, then break the answer's XML (a private key stays in it)
                 cutkey   forward, then answer with the body cut inside the private key, its
                          Content-Length saying the cut length (HTTP takes it as complete)
                 unframed forward, then answer without Content-Length, the body cut inside the
                          private key, and close the connection (HTTP/1.0's framing)
                 empty    forward (EC2 acts), then answer 200 with an empty body
                 duplicate forward the request twice (a retried request EC2 saw both times)
GET /__proxy/stats returns counts of requests seen per action, of faults injected, of throttled
answers, of key pairs hidden from a listing (--eventual) and of stalled requests that EC2
has answered (`stalled`: the request reached EC2; its answer is being held).
"""
import argparse
import http.client
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape as xml_escape

# EC2's published buckets: (burst, refill per second).
LIMITS = {
    "DescribeKeyPairs": (100, 20),
    "CreateTags": (100, 10),
    "DeleteTags": (100, 10),
    # Parameter Store's standard throughput, shared by every SSM action of an account and region.
    "ParameterStore": (40, 40),
}
DEFAULT_LIMIT = (50, 5)  # CreateKeyPair, ImportKeyPair, DeleteKeyPair, ...
# STS actions: never throttled by EC2's buckets; `denied` answers them in STS's own format.
STS_ACTIONS = ("AssumeRole", "GetCallerIdentity")
OTHER_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILSsJOePlBjf01wlQcPaZbLAONhsdQ6D8y/AnJIiQnX5 other-machine"
)

args = argparse.ArgumentParser(
    description="A proxy in front of a local EC2 server: latency, EC2's throttling, faults.",
    epilog="--faults JSON  a list" + __doc__.split("--faults JSON  a list", 1)[1],
    formatter_class=argparse.RawDescriptionHelpFormatter,
)
args.add_argument("upstream", help="the EC2 endpoint to forward to (http://127.0.0.1:PORT)")
args.add_argument("--delay-ms", type=int, default=0, metavar="N",
                  help="add N ms before each request is forwarded (a far region), STS requests too")
args.add_argument("--throttle", action="store_true",
                  help="enforce EC2's token buckets per (region, action), answering RequestLimitExceeded "
                       "(STS requests are never throttled)")
args.add_argument("--per-account", action="store_true",
                  help="with --throttle: buckets per (access key id, region, action), each assumed "
                       "role's access key standing for its account (--eventual's lag too)")
args.add_argument("--faults", default="[]", metavar="JSON",
                  help="fault rules (see below)")
args.add_argument("--limits", default="{}", metavar="JSON",
                  help='with --throttle: other buckets, {"Action": [burst, refill per second]}')
args.add_argument("--eventual", type=int, default=0, metavar="MS",
                  help="for MS ms after a write, DescribeKeyPairs does not show it yet")
opts = args.parse_args()
LIMITS.update({k: tuple(v) for k, v in json.loads(opts.limits).items()})
upstream = urllib.parse.urlparse(opts.upstream)
rules = json.loads(opts.faults)
for rule in rules:
    rule.setdefault("count", 1)
    rule.setdefault("skip", 0)
lock = threading.Lock()
buckets = {}
stats = {"requests": {}, "faults": {}, "throttled": 0, "hidden": 0, "stalled": 0}


def take_token(scope, action):
    """One token from the bucket of (scope, action); scope is the region, or with --per-account
    (access key id, region)."""
    burst, rate = LIMITS.get(action, DEFAULT_LIMIT)
    now = time.monotonic()
    with lock:
        tokens, last = buckets.get((scope, action), (float(burst), now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1:
            buckets[(scope, action)] = (tokens, now)
            return False
        buckets[(scope, action)] = (tokens - 1, now)
        return True


def pick_fault(action, params):
    names = params.get("KeyName", [""])
    roles = params.get("RoleArn", [""])
    with lock:
        for rule in rules:
            if rule["count"] <= 0 or rule["action"] not in ("*", action):
                continue
            if "name" in rule and rule["name"] not in names:
                continue
            if "role" in rule and rule["role"] not in roles:
                continue
            if rule["skip"] > 0:
                rule["skip"] -= 1
                continue
            rule["count"] -= 1
            stats["faults"][rule["fault"]] = stats["faults"].get(rule["fault"], 0) + 1
            return rule
    return None


def ec2_error(code, message):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    ).encode()


def sts_denied(action, role_arn):
    """STS's answer to a caller that may not assume the role (HTTP 403)."""
    message = (f"User: arn:aws:iam::123456789012:user/moto is not authorized to perform: "
               f"sts:{action} on resource: {role_arn or '*'}")
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>AccessDenied</Code><Message>{xml_escape(message)}</Message></Error>"
        "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    ).encode()


# Eventual consistency: (region, name) -> until (hidden new key pairs), and
# (region, name) -> (the <item> element, until) (deleted key pairs still listed); with
# --per-account, (access key id, region) in place of the region.
hidden = {}
ghosts = {}


def eventual_view(region, data, wanted):
    """A DescribeKeyPairs answer as an eventually consistent EC2 might give it."""
    import xml.etree.ElementTree as ET
    now = time.monotonic()
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return data
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    q = (lambda t: f"{{{ns}}}{t}") if ns else (lambda t: t)
    key_set = root.find(q("keySet"))
    if key_set is None:
        return data
    listed = set()
    with lock:
        for item in list(key_set):
            name = item.findtext(q("keyName"))
            if hidden.get((region, name), 0) > now:
                key_set.remove(item)
                stats["hidden"] += 1
            else:
                listed.add(name)
        for (r, name), (item, until) in ghosts.items():
            if r == region and until > now and name not in listed and (not wanted or name in wanted):
                key_set.append(ET.fromstring(item))
    if ns:
        ET.register_namespace("", ns)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def answer(self, status, body, content_type="text/xml"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self, body, headers=None):
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
        conn.request(self.command, self.path, body=body, headers=headers or dict(self.headers))
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, response.getheader("Content-Type", "text/xml"), data

    def do_GET(self):
        if self.path == "/__proxy/stats":
            with lock:
                return self.answer(200, json.dumps(stats).encode(), "application/json")
        status, content_type, data = self.forward(None)
        self.answer(status, data, content_type)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        params = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        action = params.get("Action", ["?"])[0]
        # SSM (the team store) speaks JSON: its action is in X-Amz-Target, and every action of
        # an account and region draws from one Parameter Store bucket.
        target = self.headers.get("X-Amz-Target", "")
        ssm = target.startswith("AmazonSSM.")
        if ssm:
            action = target.split(".", 1)[1]
        # Credential=AKID/DATE/REGION/SERVICE/aws4_request: who signed, where, for which service.
        scope = re.search(r"Credential=([^/]+)/\d+/([^/]+)/([^/]*)", self.headers.get("Authorization", ""))
        access_key, region, service = scope.groups() if scope else ("?", "?", "?")
        sts = action in STS_ACTIONS or service == "sts"
        # With --per-account, each access key (each assumed role's: its account) has its own
        # buckets and its own listing lag; otherwise the region alone.
        region_key = (access_key, region) if opts.per_account else region
        with lock:
            stats["requests"][action] = stats["requests"].get(action, 0) + 1
        if opts.delay_ms:
            time.sleep(opts.delay_ms / 1000)
        if opts.throttle and ssm and not take_token(region_key, "ParameterStore"):
            with lock:
                stats["throttled"] += 1
            return self.answer(400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode(),
                               "application/x-amz-json-1.1")
        if opts.throttle and not sts and not ssm and not take_token(region_key, action):
            with lock:
                stats["throttled"] += 1
            return self.answer(503, ec2_error("RequestLimitExceeded", "Request limit exceeded."))
        rule = pick_fault(action, params)
        fault = rule["fault"] if rule else None
        if fault == "refuse":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "hang":
            time.sleep(rule.get("ms", 60000) / 1000)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "http500":
            return self.answer(500, b"Internal Server Error", "text/plain")
        if fault == "http503":
            return self.answer(503, b"Service Unavailable", "text/plain")
        if fault == "denied" and sts:
            return self.answer(403, sts_denied(action, params.get("RoleArn", [""])[0]))
        if fault == "denied":
            return self.answer(403, ec2_error("UnauthorizedOperation", "You are not authorized to perform this operation."))
        if fault == "throttle":
            return self.answer(503, ec2_error("RequestLimitExceeded", "Request limit exceeded."))
        if fault == "slow":
            time.sleep(rule.get("ms", 1000) / 1000)
        if fault == "race":
            other = dict(params)
            other["Action"] = ["ImportKeyPair"]
            other["PublicKeyMaterial"] = [__import__("base64").b64encode(OTHER_KEY.encode()).decode()]
            for key in [k for k in other if k.startswith("TagSpecification") or k in ("KeyType", "KeyFormat")]:
                del other[key]
            raced = urllib.parse.urlencode({k: v[0] for k, v in other.items()}).encode()
            headers = dict(self.headers)
            headers["Content-Length"] = str(len(raced))
            self.forward(raced, headers)
        names = params.get("KeyName", [""])
        ghost = None
        if opts.eventual and action == "DeleteKeyPair":
            # Remember the key pair as it is listed now, to keep listing it after the delete.
            look = urllib.parse.urlencode({"Action": "DescribeKeyPairs", "Version": params.get("Version", [""])[0],
                                           "KeyName.1": names[0], "IncludePublicKey": "true"}).encode()
            headers = dict(self.headers)
            headers["Content-Length"] = str(len(look))
            _, _, before = self.forward(look, headers)
            item = re.search(rb"<item>.*</item>", before, re.S)
            if item:
                ns = re.search(rb'xmlns="([^"]+)"', before)
                ghost = item.group(0)
                if ns:
                    ghost = ghost.replace(b"<item>", b'<item xmlns="' + ns.group(1) + b'">', 1)
        if fault == "duplicate":
            self.forward(body)
        status, content_type, data = self.forward(body)
        if opts.eventual and status == 200:
            until = time.monotonic() + opts.eventual / 1000
            with lock:
                if action in ("CreateKeyPair", "ImportKeyPair"):
                    hidden[(region_key, names[0])] = until
                    ghosts.pop((region_key, names[0]), None)
                elif action == "DeleteKeyPair" and ghost is not None:
                    ghosts[(region_key, names[0])] = (ghost, until)
                    hidden.pop((region_key, names[0]), None)
            if action == "DescribeKeyPairs":
                wanted = {v[0] for k, v in params.items() if re.fullmatch(r"KeyName\.\d+", k)}
                wanted |= {v[0] for k, v in params.items() if re.fullmatch(r"Filter\.\d+\.Value\.\d+", k)}
                data = eventual_view(region_key, data, wanted)
        # The faults below come after EC2 acted (and its listing lags as after any write).
        if fault == "stall":
            with lock:
                stats["stalled"] += 1
            time.sleep(rule.get("ms", 60000) / 1000)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "empty":
            return self.answer(200, b"", content_type)
        if fault in ("cutkey", "unframed"):
            at = data.find(b"<keyMaterial>")
            data = data[: at + len(b"<keyMaterial>") + 200] if at >= 0 else data[: len(data) // 2]
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if fault == "cutkey":
                self.send_header("Content-Length", str(len(data)))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "mangle":
            data = re.sub(rb"<keyName>[^<]*</keyName>", "<keyName>ключ-\u00e9-\U0001f511-".encode() + b"x" * 5000 + b"</keyName>", data, count=1)
            data = re.sub(rb"<publicKey>[^<]*</publicKey>", b"<publicKey>ssh-ed25519 !!!not base64!!!</publicKey>", data)
        if fault == "garble":
            data = data.replace(b"<keyMaterial>", b"<keyMaterial><<broken", 1) + b"<unclosed"
        if fault == "cut":
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.answer(status, data, content_type)


# EC2 takes many connections at once; Python's default listen backlog (5) drops the rest, and
# a dropped connection attempt is retried by TCP only after a second. Ten accounts' clients
# connecting at once met that second, which was the proxy's, not the tool's.
ThreadingHTTPServer.request_queue_size = 256
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
sys.stdin.read()
server.shutdown()
