"""The careful boto3 script over many accounts: per account, the role assumed once through STS
(`arn:aws:iam::ACCOUNT:role/OrganizationAccountAccessRole`, session name `bench`), one
DescribeKeyPairs per account and region, then the missing key pairs created on 8 threads in
all, each private key written owner-only (0400).

  python3 bench/boto3_accounts.py ENDPOINT OUTDIR apply|check ACCOUNT:REGION:NAME ...

ACCOUNT is a 12-digit account id, or the whole ARN of the role to assume in it
(`arn:aws:iam::100000000001:role/Other:us-east-1:k-1`). Key files are OUTDIR/ACCOUNT/NAME.pem.
Prints one JSON line: {"calls": {...}, "created": n, "failed": n, "missing": n}.
"""
import json
import os
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

ROLE = "arn:aws:iam::{}:role/OrganizationAccountAccessRole"

endpoint, outdir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
# ACCOUNT:REGION:NAME, split from the right: a role ARN has colons of its own.
wanted = [tuple(arg.rsplit(":", 2)) for arg in sys.argv[4:]]
calls = Counter()
lock = threading.Lock()
clients = {}
config = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=16)


def count(request):
    body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
    action = dict(p.split("=", 1) for p in body.split("&") if "=" in p).get("Action", "?")
    with lock:
        calls[action] += 1


def counted(service, region, **credentials):
    # boto3's default session may not make clients on two threads at once.
    with lock:
        made = boto3.client(service, endpoint_url=endpoint, region_name=region, config=config, **credentials)
    made.meta.events.register(f"before-send.{service}.*", lambda request, **_: count(request))
    return made


# The caller's own credentials reach STS; each account is reached through its role.
sts = counted("sts", "us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")


def role_of(account):
    return account if account.startswith("arn:") else ROLE.format(account)


def folder(account):
    """The account's key folder: OUTDIR/ACCOUNT ID."""
    return os.path.join(outdir, role_of(account).split(":")[4])


def assume(account):
    """The temporary credentials of the account's role (one AssumeRole per account)."""
    found = sts.assume_role(RoleArn=role_of(account), RoleSessionName="bench")["Credentials"]
    return {"aws_access_key_id": found["AccessKeyId"], "aws_secret_access_key": found["SecretAccessKey"],
            "aws_session_token": found["SessionToken"]}


def look(account):
    """Assume the account's role, then one DescribeKeyPairs per region of it."""
    credentials = assume(account)
    seen = {}
    for region in sorted({r for a, r, _ in wanted if a == account}):
        clients[(account, region)] = counted("ec2", region, **credentials)
        seen[region] = {k["KeyName"] for k in clients[(account, region)].describe_key_pairs()["KeyPairs"]}
    return account, seen


# The accounts are looked at side by side (8 threads), every client made before any key.
accounts = sorted({account for account, _, _ in wanted})
existing = {}
with ThreadPoolExecutor(max_workers=8) as pool:
    for account, seen in pool.map(look, accounts):
        for region, names in seen.items():
            existing[(account, region)] = names
missing = [(a, r, n) for a, r, n in wanted if n not in existing[(a, r)]]
created = failed = 0
if mode == "apply":
    os.makedirs(outdir, mode=0o700, exist_ok=True)
    for account in accounts:
        os.makedirs(folder(account), mode=0o700, exist_ok=True)

    def create(item):
        account, region, name = item
        material = clients[(account, region)].create_key_pair(KeyName=name, KeyType="ed25519")["KeyMaterial"]
        fd = os.open(os.path.join(folder(account), name + ".pem"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as f:
            f.write(material)

    # 8 threads in all, over every account (the list's order: bench.py interleaves accounts).
    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(create, item) for item in missing]:
            try:
                future.result()
                created += 1
            except Exception:  # noqa: BLE001 - counted, the benchmark goes on
                failed += 1
print(json.dumps({"calls": dict(calls), "created": created, "failed": failed, "missing": len(missing)}))
