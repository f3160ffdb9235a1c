#!/usr/bin/python3
"""A fault-injecting, signature-checking S3 proxy for barge's tests, on loopback.

It sits between a client and an S3 protocol server (s3rver) and, for each request:
  1. recomputes the request's AWS SigV4 signature with botocore (what S3 itself would do) and
     answers 403 SignatureDoesNotMatch when the client's differs;
  2. with probability --fault-rate (seeded, so runs repeat) injects one fault:
       slowdown   503 SlowDown, request not forwarded
       error500   500 InternalError, request not forwarded
       reset      request forwarded, the response cut off mid-body by a connection reset
       applied500 (PUT and CompleteMultipartUpload only) forwarded and applied, answered 500
       error200   (CompleteMultipartUpload only) not forwarded, answered 200 with an <Error>
                  body, as S3 does when completing fails after it has started to answer
  3. otherwise forwards it and relays the answer.
With --complete-faults KIND,... (and --put-faults KIND,...), every CompleteMultipartUpload
(every PUT) cycles through those kinds and then one clean pass instead of drawing at random, so
each kind is exercised however the client's threads interleave. Each fault is appended to --log as "<kind> <method> <path>".

usage: s3_fault_proxy.py --upstream http://127.0.0.1:PORT [--fault-rate 0.3] [--seed 1]
                         [--secret S3RVER] [--region us-east-1] [--log FILE]
Prints "listening on 127.0.0.1:PORT" once it accepts connections.
"""
import argparse
import http.client
import http.server
import random
import socket
import struct
import sys
import threading
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ARGS = None
RNG_LOCK = threading.Lock()
RNG = None
LOG_LOCK = threading.Lock()
CYCLES = {}


def error_xml(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f'<Message>{message}</Message></Error>').encode()


def signature_matches(method, path, headers, body):
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    access_key = fields["Credential"].split("/")[0]
    signed = fields["SignedHeaders"].split(";")
    host = headers.get("Host", "")
    request = AWSRequest(method=method, url=f"http://{host}{path}", data=body,
                         headers={h: headers[h] for h in headers if h.lower() in signed})
    request.context["timestamp"] = headers.get("X-Amz-Date", "")
    signer = S3SigV4Auth(Credentials(access_key, ARGS.secret), "s3", ARGS.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != fields["Signature"]:
        # What S3 would have signed, for whoever debugs the client (no secrets in it).
        print(f"signature mismatch; canonical request:\n{canonical}\n", file=sys.stderr,
              flush=True)
    return expected == fields["Signature"]


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def note(self, kind):
        if ARGS.log:
            with LOG_LOCK, open(ARGS.log, "a") as f:
                f.write(f"{kind} {self.command} {self.path}\n")

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        if not signature_matches(self.command, self.path, self.headers, body):
            self.note("badsignature")
            self.answer(403, error_xml("SignatureDoesNotMatch", "The request signature we "
                                       "calculated does not match the signature you provided."))
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query,
                                      keep_blank_values=True)
        completing = self.command == "POST" and "uploadId" in query
        applies = self.command == "PUT" or completing
        kind = None
        with RNG_LOCK:
            cls = "complete" if completing else "put" if self.command == "PUT" else ""
            cycle = [k for k in {"complete": ARGS.complete_faults,
                                 "put": ARGS.put_faults}.get(cls, "").split(",") if k]
            if cycle:
                n = CYCLES.get(cls, 0)
                kind = (cycle + [None])[n % (len(cycle) + 1)]
                CYCLES[cls] = n + 1
            elif RNG.random() < ARGS.fault_rate:
                kinds = (["slowdown", "error500", "reset"] + (["applied500"] if applies else []) +
                         (["error200"] if completing else []))
                if self.command == "POST" and "uploads" in query:
                    # A CreateMultipartUpload whose answer is lost leaves an upload the client
                    # never learns the id of; only ListMultipartUploads finds it, and s3rver
                    # lacks it. Such uploads are left to the bucket's lifecycle rule.
                    kinds = ["slowdown", "error500"]
                kind = RNG.choice(kinds)
        if kind == "slowdown":
            self.note(kind)
            self.answer(503, error_xml("SlowDown", "Please reduce your request rate."))
            return
        if kind == "error200":
            self.note(kind)
            self.answer(200, error_xml("InternalError", "We encountered an internal error."))
            return
        if kind == "error500":
            self.note(kind)
            self.answer(500, error_xml("InternalError", "We encountered an internal error."))
            return
        up = urllib.parse.urlsplit(ARGS.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if kind == "applied500":
            self.note(kind)
            self.answer(500, error_xml("InternalError", "We encountered an internal error."))
            return
        relay = [(k, v) for k, v in resp.getheaders()
                 if k.lower() not in ("content-length", "connection", "transfer-encoding")]
        if kind == "reset" and len(data) > 1:
            self.note(kind)
            self.send_response(resp.status)
            for k, v in relay:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            # SO_LINGER 0: close() sends a reset, not a clean end of stream.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(resp.status)
        for k, v in relay:
            self.send_header(k, v)
        # A HEAD answer has no body but tells the object's length.
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length if length is not None else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    global ARGS, RNG
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--secret", default="S3RVER")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--log", default="")
    p.add_argument("--complete-faults", default="")
    p.add_argument("--put-faults", default="")
    ARGS = p.parse_args()
    RNG = random.Random(ARGS.seed)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
