"""Look at and change the local EC2 server the way another tool would, independently of labctl.

  ec2.py ENDPOINT describe REGION          -> JSON list of {name, type, public_key, tags}
  ec2.py ENDPOINT describe-full REGION     -> the same with id and fingerprint (EC2's KeyFingerprint)
  (ENDPOINT `aws`: real EC2 with the environment's credentials, for tests/live.rs)
  ec2.py ENDPOINT delete REGION NAME
  ec2.py ENDPOINT import REGION NAME FILE  (FILE: an OpenSSH public key)
  ec2.py ENDPOINT create REGION NAME       (prints nothing: the private key is thrown away)
  ec2.py ENDPOINT tag REGION NAME KEY VALUE
  ec2.py ENDPOINT create-rsa REGION NAME   (prints the private key as the AWS CLI's
                                           `--query KeyMaterial --output text` does)
  ec2.py ENDPOINT id REGION NAME           -> the key pair's id
REGION may be ACCOUNT:REGION: the request is made in that account, with the credentials of
its role `OrganizationAccountAccessRole` (STS AssumeRole, as labctl reaches a member account).
"""
import json
import sys

import boto3

endpoint, command, region = sys.argv[1], sys.argv[2], sys.argv[3]
if endpoint == "aws":
    # Real EC2, with the credentials of the environment (tests/live.rs only).
    ec2 = boto3.client("ec2", region_name=region)
else:
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if ":" in region:
        account, region = region.split(":", 1)
        sts = boto3.client("sts", endpoint_url=endpoint, region_name=region, **credentials)
        given = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
            RoleSessionName="tests",
        )["Credentials"]
        credentials = {
            "aws_access_key_id": given["AccessKeyId"],
            "aws_secret_access_key": given["SecretAccessKey"],
            "aws_session_token": given["SessionToken"],
        }
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=region, **credentials)
if command == "describe":
    pairs = ec2.describe_key_pairs(IncludePublicKey=True)["KeyPairs"]
    print(json.dumps([
        {
            "name": p["KeyName"],
            "type": p.get("KeyType"),
            "public_key": p.get("PublicKey", ""),
            "tags": {t["Key"]: t["Value"] for t in p.get("Tags", [])},
        }
        for p in pairs
    ]))
elif command == "describe-full":
    pairs = ec2.describe_key_pairs(IncludePublicKey=True)["KeyPairs"]
    print(json.dumps([
        {
            "name": p["KeyName"],
            "id": p.get("KeyPairId"),
            "type": p.get("KeyType"),
            "fingerprint": p.get("KeyFingerprint"),
            "public_key": p.get("PublicKey", ""),
            "tags": {t["Key"]: t["Value"] for t in p.get("Tags", [])},
        }
        for p in pairs
    ]))
elif command == "delete":
    ec2.delete_key_pair(KeyName=sys.argv[4])
elif command == "import":
    ec2.import_key_pair(KeyName=sys.argv[4], PublicKeyMaterial=open(sys.argv[5], "rb").read())
elif command == "tag":
    pair = ec2.describe_key_pairs(KeyNames=[sys.argv[4]])["KeyPairs"][0]
    ec2.create_tags(Resources=[pair["KeyPairId"]], Tags=[{"Key": sys.argv[5], "Value": sys.argv[6]}])
elif command == "create":
    ec2.create_key_pair(KeyName=sys.argv[4], KeyType="ed25519")
elif command == "create-rsa":
    material = ec2.create_key_pair(KeyName=sys.argv[4], KeyType="rsa")["KeyMaterial"]
    # The AWS CLI's text output: the value, then a newline.
    sys.stdout.write(material + "\n")
elif command == "id":
    print(ec2.describe_key_pairs(KeyNames=[sys.argv[4]])["KeyPairs"][0]["KeyPairId"])
else:
    sys.exit(f"unknown command {command}")
