#!/usr/bin/python3
"""A stand-in for the EC2 instance metadata service (IMDSv2 only) on loopback, for tests.

PUT /latest/api/token (with X-aws-ec2-metadata-token-ttl-seconds) returns a session token;
GETs need that token in X-aws-ec2-metadata-token (401 otherwise, as IMDSv2 answers):
  /latest/meta-data/iam/security-credentials/        -> the role name
  /latest/meta-data/iam/security-credentials/ROLE    -> temporary credentials as JSON
Prints "listening on 127.0.0.1:PORT" once it accepts connections.
"""
import http.server
import json

TOKEN = "imds-session-token"
ROLE = "barge-worker-role"
CREDS = {"Code": "Success", "AccessKeyId": "ASIAFAKEIMDSKEY", "SecretAccessKey": "imds-secret",
         "Token": "imds-session-credential-token", "Expiration": "2099-01-01T00:00:00Z"}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get(
                "X-aws-ec2-metadata-token-ttl-seconds"):
            self.reply(200, TOKEN)
        else:
            self.reply(400, "bad token request")

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self.reply(401, "")
        elif self.path == "/latest/meta-data/iam/security-credentials/":
            self.reply(200, ROLE)
        elif self.path == f"/latest/meta-data/iam/security-credentials/{ROLE}":
            self.reply(200, json.dumps(CREDS))
        else:
            self.reply(404, "")


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
