# SPDX-License-Identifier: MIT OR Apache-2.0
"""A webhook receiver for tests/iguardpublish.rs, on loopback.

Usage: webhook_server.py PORT SECRET FAIL_SECONDS REFUSE_MOD LOG [CERT KEY]

Checks every POST (Content-Type, Idempotency-Key = the body's event_id, the
X-IGuard-Signature HMAC-SHA256 over the body with SECRET), answers 401 to a bad one, 500 for
FAIL_SECONDS after the first request, then 422 to verdicts whose request_id % REFUSE_MOD == 0
(REFUSE_MOD 0: none) and 200 to the rest. Each answer is a JSON line in LOG:
{"code", "event_id", "request_id", "replayed", "schema", "type", "problem"}.
With CERT and KEY (PEM files), it serves HTTPS. Prints "ready" once listening.

HOOK_SCRIPT (environment), e.g. "429/s2,408/d3,401,403": the answers to the first good
requests, in order, before the rules above apply; "/sN" adds "Retry-After: N" (seconds),
"/dN" adds "Retry-After: <HTTP date N seconds from now>". Each log line also has "t", the
server's monotonic time of the request in seconds.
"""
import hashlib
import hmac
import http.server
import json
import email.utils
import os
import ssl
import sys
import time

port, secret, fail_s, refuse_mod, log_path = (
    int(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
first = None
log = open(log_path, "a", buffering=1)
script = [a for a in os.environ.get("HOOK_SCRIPT", "").split(",") if a]


class Hook(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        global first
        if first is None:
            first = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        problem = ""
        event = {}
        try:
            event = json.loads(body)
        except ValueError as e:
            problem = f"not JSON: {e}"
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(self.headers.get("X-IGuard-Signature", ""), want):
            problem = "bad signature"
        elif self.headers.get("Content-Type") != "application/json":
            problem = "bad content type"
        elif self.headers.get("Idempotency-Key") != event.get("event_id"):
            problem = "Idempotency-Key is not the event_id"
        retry_after = None
        if problem:
            code = 401
        elif script:
            answer, _, after = script.pop(0).partition("/")
            code = int(answer)
            if after.startswith("s"):
                retry_after = after[1:]
            elif after.startswith("d"):
                retry_after = email.utils.formatdate(time.time() + float(after[1:]), usegmt=True)
        elif time.monotonic() - first < fail_s:
            code = 500
        elif (refuse_mod and event.get("schema") == "iguard.verdict/1"
              and event["request_id"] % refuse_mod == 0):
            code = 422
        else:
            code = 200
        log.write(json.dumps({
            "code": code, "event_id": event.get("event_id"),
            "request_id": event.get("request_id"), "replayed": event.get("replayed"),
            "schema": event.get("schema"), "type": event.get("type"), "problem": problem,
            "t": time.monotonic()}) + "\n")
        self.send_response(code)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = http.server.HTTPServer(("127.0.0.1", port), Hook)
if len(sys.argv) > 7:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[6], sys.argv[7])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
