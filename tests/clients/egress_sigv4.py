"""botocore, as an independent implementation, recomputes the SigV4 signature of a request
Latchkey's egress engine signed for an AWS credential (POST /api/v1/http_requests with
`Authorization: <<CREDENTIAL.slug>>`), from what the upstream received."""

import json
import os
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

URL = os.environ["LATCHKEY_URL"]
TOKEN = os.environ["LATCHKEY_TOKEN"]
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

received = {}


class Upstream(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        received["method"] = self.command
        received["path"] = self.path
        received["headers"] = {k.lower(): v for k, v in self.headers.items()}
        received["body"] = self.rfile.read(length)
        answer = b'{"TableNames": []}'
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def call(method, path, body):
    request = urllib.request.Request(
        URL + path,
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


server = HTTPServer(("127.0.0.1", 0), Upstream)
port = server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()

team = call("POST", "/api/v1/teams", {"name": "SigV4 check"})["id"]
call("POST", "/api/v1/user_credentials", {
    "name": "dynamo", "mode": "AWS", "team_id": team, "aws_authentication_type": "KEY",
    "aws_access_key": ACCESS_KEY, "aws_secret_key": SECRET_KEY,
    "aws_region": "eu-west-1", "aws_service": "dynamodb", "allowed_hosts": ["127.0.0.1"],
})
answer = call("POST", "/api/v1/http_requests", {
    "team_id": team,
    "url": f"http://127.0.0.1:{port}/tables/list?b=2&a=hello%20world&c=%2F",
    "method": "post",
    "content_type": "json",
    "payload": {"Limit": 10, "Note": "ünïcode"},
    "headers": {"Authorization": "<<CREDENTIAL.dynamo>>", "X-Amz-Target": "DynamoDB_20120810.ListTables"},
})
assert answer["status"] == 200, answer

headers = received["headers"]
authorization = headers.pop("authorization")
assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"), authorization
fields = dict(part.strip().split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
signed = fields["SignedHeaders"].split(";")
assert fields["Credential"].endswith("/eu-west-1/dynamodb/aws4_request"), fields
assert {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-target", "content-type"} <= set(signed), signed

request = AWSRequest(
    method=received["method"],
    url=f"http://127.0.0.1:{port}{received['path']}",
    headers={name: headers[name] for name in signed},
    data=received["body"],
)
request.context["timestamp"] = headers["x-amz-date"]
auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "dynamodb", "eu-west-1")
canonical = auth.canonical_request(request)
expected = auth.signature(auth.string_to_sign(request, canonical), request)
assert fields["Signature"] == expected, (fields["Signature"], expected, canonical)
print("SigV4 signature checked by botocore: ok")
server.shutdown()
