"""Look at and change the local server's SSM parameters and S3 objects the way another tool
would (CloudFormation, the AWS CLI), independently of labctl.

  team.py ENDPOINT params REGION ID...          -> JSON {id: {"value", "tags"}} for /ec2/keypair/ID
  team.py ENDPOINT names REGION                 -> JSON list of every parameter name in REGION
  team.py ENDPOINT put-param REGION NAME FILE   (a SecureString, no labctl tag)
  team.py ENDPOINT cfn-key REGION NAME STACK    (a key pair made as CloudFormation makes one:
                                                 its private key at /ec2/keypair/ID; prints ID)
  team.py ENDPOINT bucket NAME                  (creates the bucket)
  team.py ENDPOINT objects BUCKET               -> JSON {key: body}
  team.py ENDPOINT put-object BUCKET KEY BODY
"""
import json
import sys

import boto3

endpoint, command = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def ssm(region):
    return boto3.client("ssm", endpoint_url=endpoint, region_name=region, **credentials)


def s3():
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials)


if command == "params":
    client = ssm(args[0])
    out = {}
    for key_pair_id in args[1:]:
        name = f"/ec2/keypair/{key_pair_id}"
        try:
            value = client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except client.exceptions.ParameterNotFound:
            continue
        tags = client.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
        out[key_pair_id] = {"value": value, "tags": {t["Key"]: t["Value"] for t in tags}}
    print(json.dumps(out))
elif command == "names":
    client = ssm(args[0])
    names = []
    for page in client.get_paginator("describe_parameters").paginate():
        names += [p["Name"] for p in page["Parameters"]]
    print(json.dumps(names))
elif command == "put-param":
    region, name, path = args[:3]
    kind = args[3] if len(args) > 3 else "SecureString"
    with open(path) as f:
        ssm(region).put_parameter(Name=name, Value=f.read(), Type=kind)
elif command == "cfn-key":
    region, name, stack = args
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=region, **credentials)
    made = ec2.create_key_pair(
        KeyName=name,
        KeyType="ed25519",
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [
            {"Key": "aws:cloudformation:stack-name", "Value": stack}]}],
    )
    ssm(region).put_parameter(
        Name=f"/ec2/keypair/{made['KeyPairId']}", Value=made["KeyMaterial"], Type="SecureString")
    print(made["KeyPairId"])
elif command == "bucket":
    s3().create_bucket(Bucket=args[0])
elif command == "objects":
    client = s3()
    out = {}
    for o in client.list_objects_v2(Bucket=args[0]).get("Contents", []):
        out[o["Key"]] = client.get_object(Bucket=args[0], Key=o["Key"])["Body"].read().decode()
    print(json.dumps(out))
elif command == "put-object":
    bucket, key, body = args
    s3().put_object(Bucket=bucket, Key=key, Body=body.encode())
else:
    sys.exit(f"unknown command {command}")
