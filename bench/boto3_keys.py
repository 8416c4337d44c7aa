"""The careful boto3 script labctl is measured against: one DescribeKeyPairs per region, then
the missing key pairs created on 8 threads, each private key written owner-only (0400).

  python3 bench/boto3_keys.py ENDPOINT OUTDIR apply|check REGION:NAME ...

Prints one JSON line: {"calls": {...}, "created": n, "failed": n}.
"""
import json
import os
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

endpoint, outdir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
wanted = [arg.split(":", 1) for arg in sys.argv[4:]]
calls = Counter()
lock = threading.Lock()
clients = {}
config = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=16)


def client(region):
    with lock:
        if region not in clients:
            clients[region] = boto3.client(
                "ec2", endpoint_url=endpoint, region_name=region,
                aws_access_key_id="bench", aws_secret_access_key="bench", config=config,
            )
            clients[region].meta.events.register(
                "before-send.ec2.*", lambda request, **_: count(request)
            )
        return clients[region]


def count(request):
    body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
    action = dict(p.split("=", 1) for p in body.split("&") if "=" in p).get("Action", "?")
    with lock:
        calls[action] += 1


regions = sorted({region for region, _ in wanted})
existing = {}
for region in regions:
    existing[region] = {k["KeyName"] for k in client(region).describe_key_pairs()["KeyPairs"]}
missing = [(r, n) for r, n in wanted if n not in existing[r]]
created = failed = 0
if mode == "apply":
    os.makedirs(outdir, mode=0o700, exist_ok=True)

    def create(item):
        region, name = item
        material = client(region).create_key_pair(KeyName=name, KeyType="ed25519")["KeyMaterial"]
        fd = os.open(os.path.join(outdir, name + ".pem"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as f:
            f.write(material)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(create, item) for item in missing]:
            try:
                future.result()
                created += 1
            except Exception:  # noqa: BLE001 - counted, the benchmark goes on
                failed += 1
print(json.dumps({"calls": dict(calls), "created": created, "failed": failed, "missing": len(missing)}))
