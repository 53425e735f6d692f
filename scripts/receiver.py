#!/usr/bin/env python3
"""A stand-in for the connected systems, for the demo and for trying routes by hand.

Listens on 127.0.0.1 for HTTP POSTs (/systems/<id>) and MLLP messages, answers 200 / an
HL7 ACK (AA, MSA-2 = the message's MSH-10), and stores each delivery under
DIR/<system>/<n>.<ext>, and one line per delivery in DIR/deliveries.log
("<system> <http|mllp> <idempotency key or MSH-10>"). MLLP deliveries are filed under the
message's MSH-5 (the system id the engine puts there). `--fail ID` answers 503 (HTTP) or
AE (MLLP) for that system, to see retries and dead letters. Port 0 takes any free port; the
ports bound are printed on the first line.

usage: receiver.py --http PORT --mllp PORT --dir DIR [--fail ID]...
"""
import argparse
import http.server
import os
import socketserver
import threading

lock = threading.Lock()
counter = [0]


def store(base, system, ext, body, kind="", ident=""):
    with lock:
        counter[0] += 1
        n = counter[0]
        os.makedirs(base, exist_ok=True)
        with open(os.path.join(base, "deliveries.log"), "a") as log:
            log.write("%s %s %s\n" % (system, kind, ident or "-"))
    d = os.path.join(base, system)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "%05d%s" % (n, ext)), "wb") as f:
        f.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", type=int, default=0)
    ap.add_argument("--mllp", type=int, default=0)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--fail", action="append", default=[])
    a = ap.parse_args()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            system = self.path.rstrip("/").split("/")[-1]
            if system in a.fail:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            ctype = self.headers.get("Content-Type", "")
            ext = ".xml" if "xml" in ctype else (".hl7" if "hl7" in ctype else ".json")
            store(a.dir, system, ext, body, "http", self.headers.get("Idempotency-Key", ""))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class M(socketserver.BaseRequestHandler):
        def handle(self):
            buf = b""
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                buf += data
                while b"\x1c\r" in buf:
                    frame, buf = buf.split(b"\x1c\r", 1)
                    msg = frame[frame.find(b"\x0b") + 1:]
                    msh = msg.split(b"\r")[0].split(b"|")
                    system = msh[4].decode("latin-1") if len(msh) > 4 else "unknown"
                    control = msh[9] if len(msh) > 9 else b""
                    code = b"AE" if system in a.fail else b"AA"
                    if code == b"AA":
                        store(a.dir, system or "unknown", ".hl7", msg, "mllp",
                              control.decode("latin-1"))
                    ack = (b"MSH|^~\\&|" + (msh[4] if len(msh) > 4 else b"") + b"|" +
                           (msh[5] if len(msh) > 5 else b"") + b"|BUDSTIKKE||20260101||ACK|" +
                           control + b"|P|2.5\rMSA|" + code + b"|" + control + b"\r")
                    self.request.sendall(b"\x0b" + ack + b"\x1c\r")

    class TS(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    class HS(http.server.ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    hs = HS(("127.0.0.1", a.http), H)
    ms = TS(("127.0.0.1", a.mllp), M)
    threading.Thread(target=ms.serve_forever, daemon=True).start()
    print("receiver: http 127.0.0.1:%d, mllp 127.0.0.1:%d, storing in %s" %
          (hs.server_address[1], ms.server_address[1], a.dir), flush=True)
    hs.serve_forever()


if __name__ == "__main__":
    main()
