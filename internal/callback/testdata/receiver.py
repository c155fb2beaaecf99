# Receive a lambda-microservice callback and verify X-Lambda-Signature (Python 3, stdlib only).
import hashlib, hmac, json, os, time
from http.server import BaseHTTPRequestHandler, HTTPServer

def verify(header, body, secret, tolerance=300):
    pairs = [p.strip().split("=", 1) for p in header.split(",") if "=" in p]
    t = next((v for k, v in pairs if k == "t"), "")
    if not (t.isascii() and t.isdigit()) or abs(time.time() - int(t)) > tolerance:
        return False
    mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(mac, v) for k, v in pairs if k == "v1")

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))  # the raw bytes, not re-encoded JSON
        ok = verify(self.headers.get("X-Lambda-Signature", ""), body, os.environ["LAMBDA_WEBHOOK_SECRET"])
        self.send_response(204 if ok else 400)
        self.end_headers()
        if ok:
            print("verified", json.loads(body), flush=True)

if __name__ == "__main__":
    server = HTTPServer((os.environ.get("HOST", ""), int(os.environ.get("PORT", "8000"))), Receiver)
    print("listening on", server.server_port, flush=True)
    server.serve_forever()
