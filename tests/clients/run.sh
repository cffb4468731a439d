#!/usr/bin/env bash
# Runs the official Sunshine Conversations Python SDK, unmodified, against a fresh Latchkey:
# builds the binary, starts `latchkey serve` in an empty directory on a free port, makes an
# organization, a token and an account key with curl, then runs sunshine_sdk.py in a
# virtualenv (created once under target/, with the pinned requirements).
# Then a generic OAuth client (oauth_generic.py, authlib) and the official Commerce Layer JS libraries (commercelayer/sdk.mjs, packages pinned in
# commercelayer/package-lock.json, installed with npm ci) against the same server, and
# botocore re-checking the SigV4 signatures of the egress engine (egress_sigv4.py, own venv).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed; the Commerce Layer check needs Node.js >= 20 and npm." >&2; exit 1; }
done
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "Node.js $(node --version) is too old; the Commerce Layer libraries need Node.js >= 20." >&2; exit 1; }
source "$root/tests/lib.sh"
venv="$root/target/clients-venv"
make_venv "$venv" "$root/tests/clients/requirements.txt"
aws_venv="$root/target/clients-venv-aws"
make_venv "$aws_venv" "$root/tests/clients/requirements-aws.txt"

# js-auth's jwtVerify and revoke follow a token's iss only when it is https://auth.<domain>;
# sdk.mjs sends that origin (and https://provisioning.<domain>) to this server.
cl_domain=latchkey.test
# The SigV4 check's upstream is on loopback.
export LATCHKEY_PUBLIC_URL="https://auth.$cl_domain" LATCHKEY_EGRESS_ALLOW_NETWORKS=127.0.0.0/8
start_latchkey clients

org=$(post /v1/organizations "$admin" '{"name":"SDK check"}' | json '["id"]')
token=$(post /v1/tokens "$admin" "{\"organization_id\":\"$org\",\"name\":\"sdk\",\"role\":\"admin\"}" | json '["token"]')
key=$(post /v1/account_keys "$token" '{"displayName":"sdk"}')

LATCHKEY_URL="$url" \
LATCHKEY_ACCOUNT_KEY_ID=$(echo "$key" | json '["key"]["id"]') \
LATCHKEY_ACCOUNT_KEY_SECRET=$(echo "$key" | json '["key"]["secret"]') \
  "$venv/bin/python" "$root/tests/clients/sunshine_sdk.py" || { cat serve.log >&2; exit 1; }

# A generic OAuth 2 client (authlib), unmodified: client_credentials, authorization_code with
# PKCE through the login hand-off, refresh rotation and reuse, revocation.
LATCHKEY_URL="$url" \
LATCHKEY_ADMIN_TOKEN="$admin" \
  "$venv/bin/python" "$root/tests/clients/oauth_generic.py" || { cat serve.log >&2; exit 1; }

cl="$root/tests/clients/commercelayer"
(cd "$cl" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
cl_org=$(post /v1/organizations "$admin" '{"name":"Commerce Layer SDK check"}' | json '["id"]')
LATCHKEY_URL="$url" \
LATCHKEY_ORGANIZATION_ID="$cl_org" \
LATCHKEY_TOKEN=$(post /v1/tokens "$admin" "{\"organization_id\":\"$cl_org\",\"name\":\"sdk\",\"role\":\"admin\"}" | json '["token"]') \
LATCHKEY_CL_DOMAIN="$cl_domain" \
  node "$cl/sdk.mjs" || { cat serve.log >&2; exit 1; }

# botocore recomputes the signature of a request the egress engine signed for AWS.
LATCHKEY_URL="$url" \
LATCHKEY_TOKEN="$token" \
  "$aws_venv/bin/python" "$root/tests/clients/egress_sigv4.py" || { cat serve.log >&2; exit 1; }
