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

With --list-page-size N it also answers ListObjectsV2 itself, correctly and adversarially, since
s3rver's own paging drops keys: from a snapshot, taken at the first page, of the keys in
s3rver's directory (--upstream-dir),
pages of at most N entries (and never more than max-keys) in a cycle of sizes that includes
empty pages still marked truncated, continuation tokens holding '+', '/' and '=' that are
refused (400 InvalidArgument) unless they come back exactly, and delimiters with common
prefixes counted as entries ("a1.log" sorts before "a1/"). And it refuses a DeleteObjects of
more than 1,000 keys with 400 MalformedXML, as S3 does. Each list page is logged as
"listpage <keys> <prefixes> <truncated>", each delete as "delete <keys>".

usage: s3_fault_proxy.py --upstream http://127.0.0.1:PORT [--fault-rate 0.3] [--seed 1]
                         [--secret S3RVER] [--region us-east-1] [--log FILE]
                         [--list-page-size N]
Prints "listening on 127.0.0.1:PORT" once it accepts connections.
"""
import argparse
import base64
import http.client
import itertools
import os
import http.server
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ARGS = None
RNG_LOCK = threading.Lock()
RNG = None
LOG_LOCK = threading.Lock()
CYCLES = {}
LISTINGS_LOCK = threading.Lock()
LISTINGS = {}  # snapshot id -> (request parameters, entries)
LISTING_IDS = itertools.count(1)
PAGE_SIZES = None  # the cycle of page sizes, from --list-page-size


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


def upstream_keys(bucket):
    """Every (key, size, etag, last_modified) in the bucket, read from s3rver's directory: its
    own paging sorts "a1/" before "a1.log" and then drops keys at page boundaries."""
    root = os.path.join(ARGS.upstream_dir, bucket)
    suffix = "._S3rver_object"
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith("._S3rver")]
        for name in files:
            if not name.endswith(suffix):
                continue
            path = os.path.join(folder, name)
            try:
                with open(path + ".md5") as f:
                    md5 = f.read().strip()
                stat = os.stat(path)
            except FileNotFoundError:
                continue  # being written or deleted
            key = os.path.relpath(path, root)[: -len(suffix)]
            modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(stat.st_mtime))
            out.append((key, str(stat.st_size), f'"{md5}"', modified))
    out.sort(key=lambda e: e[0].encode())
    return out


def entries_of(keys, prefix, delimiter, start_after):
    """What a listing walks: keys, and each common prefix once where its first key sorts."""
    entries, seen = [], set()
    for key in keys:
        name = key[0]
        if not name.startswith(prefix) or (start_after and name.encode() <= start_after.encode()):
            continue
        rest = name[len(prefix):]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common not in seen:
                seen.add(common)
                entries.append(("prefix", common))
            continue
        entries.append(("key", key))
    return entries


def make_token(listing_id, position, page):
    # '+', '/' and '=' in every token: a client that does not encode them sends another token.
    raw = f"{listing_id}:{position}:{page}:\u00e9+/=".encode()
    return "+/=" + base64.b64encode(raw).decode()


def read_token(token):
    try:
        fields = base64.b64decode(token[3:], validate=True).decode().split(":", 3)
        found = int(fields[0]), int(fields[1]), int(fields[2])
        return found if token.startswith("+/=") and make_token(*found) == token else None
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def list_objects(handler, bucket, query):
    one = {k: v[0] for k, v in query.items()}
    prefix = one.get("prefix", "")
    delimiter = one.get("delimiter", "")
    encode = one.get("encoding-type") == "url"
    max_keys = int(one.get("max-keys", "1000"))
    token = one.get("continuation-token")
    params = (bucket, prefix, delimiter, one.get("start-after", ""))
    if token is None:
        entries = entries_of(upstream_keys(bucket), prefix, delimiter,
                             params[3])
        with LISTINGS_LOCK:
            listing_id = next(LISTING_IDS)
            LISTINGS[listing_id] = (params, entries)
        position, page_number = 0, 0
    else:
        found = read_token(token)
        with LISTINGS_LOCK:
            listing = LISTINGS.get(found[0]) if found else None
        if listing is None or listing[0] != params:
            handler.note("badtoken")
            handler.answer(400, error_xml("InvalidArgument",
                                          "The continuation token provided is incorrect"))
            return
        listing_id, position, page_number = found
        entries = listing[1]
    size = min(max_keys, PAGE_SIZES[page_number % len(PAGE_SIZES)])
    page = entries[position: position + size]
    following = position + len(page)
    truncated = following < len(entries) and max_keys > 0
    enc = (lambda v: urllib.parse.quote(v, safe="/")) if encode else (lambda v: v)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
             f"<Name>{escape(bucket)}</Name><Prefix>{escape(enc(prefix))}</Prefix>",
             f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>"]
    if delimiter:
        parts.append(f"<Delimiter>{escape(enc(delimiter))}</Delimiter>")
    if encode:
        parts.append("<EncodingType>url</EncodingType>")
    if token is not None:
        parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if truncated:
        parts.append(f"<NextContinuationToken>{escape(make_token(listing_id, following, page_number + 1))}"
                     "</NextContinuationToken>")
    for kind, value in page:
        if kind == "key":
            key, size_, etag, modified = value
            parts.append(f"<Contents><Key>{escape(enc(key))}</Key>"
                         f"<LastModified>{escape(modified or '')}</LastModified>"
                         f"<ETag>{escape(etag or '')}</ETag><Size>{size_}</Size>"
                         "<StorageClass>STANDARD</StorageClass></Contents>")
    for kind, value in page:
        if kind == "prefix":
            parts.append(f"<CommonPrefixes><Prefix>{escape(enc(value))}</Prefix></CommonPrefixes>")
    parts.append("</ListBucketResult>")
    keys = sum(1 for kind, _ in page if kind == "key")
    handler.note(f"listpage {keys} {len(page) - keys} {'true' if truncated else 'false'}")
    handler.answer(200, "".join(parts).encode(), [("Content-Type", "application/xml")])


def connect(host, port):
    """A connection that sends each write at once: headers and body go in separate writes,
    and Nagle's algorithm would hold the second until the first is acknowledged (40 ms)."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
        if ARGS.list_page_size:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            if self.command == "GET" and "list-type" in query and path.strip("/").count("/") == 0:
                list_objects(self, path.strip("/"), query)
                return
            if self.command == "POST" and "delete" in query:
                count = len(ET.fromstring(body).findall("{*}Object"))
                self.note(f"delete {count}")
                if count > 1000:
                    self.answer(400, error_xml("MalformedXML", "The XML you provided was not "
                                               "well-formed or did not validate against our "
                                               "published schema"))
                    return
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
        conn = connect(up.hostname, up.port)
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
    p.add_argument("--list-page-size", type=int, default=0)
    p.add_argument("--upstream-dir", default="", help="s3rver's -d directory (for listings)")
    ARGS = p.parse_args()
    if ARGS.list_page_size and not ARGS.upstream_dir:
        p.error("--list-page-size needs --upstream-dir")
    RNG = random.Random(ARGS.seed)
    global PAGE_SIZES
    n = ARGS.list_page_size
    PAGE_SIZES = [n, 1, 0, max(n - 1, 1), 2, n]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
