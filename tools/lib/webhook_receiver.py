#!/usr/bin/env python3
"""The demo's webhook receiver: takes the aggregator's alarm notifications (docs/alerting.md),
checks each signature with the channel's secret, answers 204, and writes one line per alarm
change to a log, so the demo shows notifications arriving.

    webhook_receiver.py SECRET_FILE LOG_FILE PORT_FILE

Listens on 127.0.0.1, a free port, which it writes to PORT_FILE once it is ready.
"""
import hashlib
import hmac
import http.server
import json
import sys
import time


def main():
    secret_file, log_file, port_file = sys.argv[1:4]
    with open(secret_file, "rb") as f:
        secret = f.read().strip()
    log = open(log_file, "a", buffering=1)
    seen = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(want, self.headers.get("X-Postwatch-Signature", ""))
            now = time.strftime("%H:%M:%S")
            if not signed:
                log.write(f"{now} REFUSED: bad signature ({len(body)} bytes)\n")
                self.send_response(401)
                self.end_headers()
                return
            n = json.loads(body)
            repeat = n["notification_id"] in seen
            seen.add(n["notification_id"])
            for a in n.get("alarms", []):
                what = f"goal {a['goal']}" if a.get("kind") == "goal" else f"{a.get('kind')} {a.get('post', '')}"
                log.write(f"{now} {n['notification_id']}{' (again)' if repeat else ''} {a.get('event')}: "
                          f"{what.strip()} {a.get('level')} (alarm {a.get('id')}), signature ok\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):  # the log above is the record
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
