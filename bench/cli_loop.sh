#!/usr/bin/env bash
# The loop a workshop guide uses, once per key pair (AWS CLI):
#   aws ec2 create-key-pair ... --query KeyMaterial --output text > k.pem; chmod 400 k.pem
# With `check`, it looks each key pair up instead, as a re-run of the guide would.
# Usage: cli_loop.sh ENDPOINT OUTDIR apply|check REGION:NAME ...
set -uo pipefail
endpoint=$1 outdir=$2 mode=$3
shift 3
mkdir -p "$outdir"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
failed=0
for item in "$@"; do
  region=${item%%:*} name=${item#*:}
  if [ "$mode" = apply ]; then
    aws --endpoint-url "$endpoint" --region "$region" ec2 create-key-pair --key-name "$name" \
      --key-type ed25519 --query KeyMaterial --output text > "$outdir/$name.pem" || failed=$((failed + 1))
    chmod 400 "$outdir/$name.pem"
  else
    aws --endpoint-url "$endpoint" --region "$region" ec2 describe-key-pairs --key-names "$name" \
      > /dev/null || failed=$((failed + 1))
  fi
done
echo "{\"calls\": {\"$([ "$mode" = apply ] && echo CreateKeyPair || echo DescribeKeyPairs)\": $#}, \"failed\": $failed}"
