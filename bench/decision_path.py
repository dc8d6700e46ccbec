#!/usr/bin/env python3
"""Helpers of bench/decision-path.sh (standard library only).

  decision_path.py mock <port>
      A mock Telegram Bot API on 127.0.0.1:<port>. Answers every method the
      server calls (getMe, setWebhook, deleteWebhook, getUpdates: no
      updates, after a short wait; sendMessage, editMessageText,
      answerCallbackQuery) the way the Bot API does. Each sendMessage is
      kept with the time.monotonic() at which its request had arrived (on
      Linux the same clock in every process). GET /_records answers them
      as JSON ([{"t": monotonic, "wall": time.time(), "text": ...}]),
      GET /_count their number.

  decision_path.py send <server url> <webhook token> <mock url> <rate>
                        <duration s> <run> <timeout s> <out json>
      Sends one firing Alertmanager webhook (version 4) per alert to
      POST /ops/webhook/alertmanager, RATE a second for DURATION seconds,
      paced on an absolute schedule, on one persistent HTTP/1.1
      connection. Every alert has its own fingerprint and metric label
      (dp-<run>-<n>), so each opens a new incident (see alert_body). Keeps, per alert, the
      time its 2xx was read (acknowledged) and the incident id the answer
      names; then waits (up to TIMEOUT after the last acknowledgement) for
      every incident's approval request at the mock, matches them by the
      incident id the message carries, and writes the samples to OUT.

  decision_path.py report <strict> <target ms> <rate> <out json>...
      The table over the runs; exits 1 when an alert got no approval
      request or a request failed, and with strict=1 also when the target
      is missed.
"""
import http.client
import json
import re
import statistics
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# --- the mock Telegram Bot API ------------------------------------------------

BOT = {"id": 1000001, "is_bot": True, "first_name": "infraai-bench", "username": "infraai_bench_bot"}


def mock(port):
    lock = threading.Lock()
    records = []
    next_id = [1]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body in one write, sent at once: a small second write
        # held back by Nagle's algorithm until the peer's delayed ACK would
        # hold the server's decision worker for ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def answer(self, status, doc):
            data = json.dumps(doc).encode()
            head = "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
                status, "OK" if status == 200 else "Not Found", len(data))
            self.wfile.write(head.encode() + data)

        def do_GET(self):
            if self.path == "/_records":
                with lock:
                    doc = list(records)
                return self.answer(200, doc)
            if self.path == "/_count":
                with lock:
                    n = len(records)
                return self.answer(200, {"count": n})
            return self.method(self.path, {})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            t = time.monotonic()
            try:
                doc = json.loads(body) if body else {}
            except ValueError:
                doc = {}
            return self.method(self.path, doc, t)

        def method(self, path, body, t=None):
            m = re.match(r"^/bot[^/]+/(\w+)$", path.split("?")[0])
            if not m:
                return self.answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            name = m.group(1)
            if name == "getMe":
                return self.answer(200, {"ok": True, "result": BOT})
            if name in ("setWebhook", "deleteWebhook", "answerCallbackQuery", "setMyCommands"):
                return self.answer(200, {"ok": True, "result": True})
            if name == "getWebhookInfo":
                return self.answer(200, {"ok": True, "result": {"url": "", "pending_update_count": 0}})
            if name == "getUpdates":
                # A long poll with nothing to deliver: wait a little (not the
                # whole timeout, so that the process exits promptly).
                time.sleep(min(float(body.get("timeout") or 0), 2.0))
                return self.answer(200, {"ok": True, "result": []})
            chat = {"id": body.get("chat_id", 0), "type": "group", "title": "bench"}
            if name == "sendMessage":
                text = body.get("text", "")
                with lock:
                    message_id = next_id[0]
                    next_id[0] += 1
                    records.append({"t": t, "wall": time.time(), "text": text})
                return self.answer(200, {"ok": True, "result": {
                    "message_id": message_id, "from": BOT, "chat": chat,
                    "date": int(time.time()), "text": text}})
            if name == "editMessageText":
                return self.answer(200, {"ok": True, "result": {
                    "message_id": body.get("message_id", 0), "from": BOT, "chat": chat,
                    "date": int(time.time()), "text": body.get("text", "")}})
            return self.answer(200, {"ok": True, "result": True})

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    Server(("127.0.0.1", port), Handler).serve_forever()


# --- the sender ---------------------------------------------------------------

def alert_body(name):
    """One firing alert as an Alertmanager webhook: CPU high on `api`, the
    gce_instance of the deployment the script made first (the rule policy
    proposes a scale-up, and earned autonomy, not yet earned, sends it to a
    human). `name` is its fingerprint and, in the metric label, shows in the
    approval request's text ("Metric: cpu_<name> = 0.97")."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "BenchHighCPU", "instance": "api", "resource_type": "gce_instance",
                   "severity": "warning", "metric": "cpu_" + name, "bench_id": name, "job": "bench"},
        "annotations": {"value": "0.97", "threshold": "0.8", "summary": "bench decision path"},
        "startsAt": "2026-11-25T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://bench/",
        "fingerprint": name,
    }
    return json.dumps({
        "version": "4", "groupKey": '{}:{alertname="BenchHighCPU"}', "status": "firing",
        "receiver": "infraai", "groupLabels": {"alertname": "BenchHighCPU"}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://bench/", "truncatedAlerts": 0,
        "alerts": [alert],
    }).encode()


def get_json(url):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request("GET", u.path)
    r = c.getresponse()
    doc = json.loads(r.read())
    c.close()
    return doc


INCIDENT = re.compile(r"incident <code>([0-9a-fA-F-]{36})</code>")


def send(server, token, mock_url, rate, duration, run, timeout, out):
    rate, duration, timeout = float(rate), float(duration), float(timeout)
    u = urllib.parse.urlparse(server)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token}
    n = int(rate * duration)
    bodies = [alert_body("dp-%s-%d" % (run, i)) for i in range(n)]
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.connect()
    sent = []  # {"name", "sent", "ack", "incident", "status"}
    errors = 0
    late = 0  # requests sent more than one period after their slot
    period = 1.0 / rate
    start = time.monotonic() + 0.05
    for i, body in enumerate(bodies):
        slot = start + i * period
        now = time.monotonic()
        if now < slot:
            time.sleep(slot - now)
        elif now - slot > period:
            late += 1
        t0 = time.monotonic()
        try:
            conn.request("POST", "/ops/webhook/alertmanager", body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            errors += 1
            print("alert %d: %s" % (i, e), file=sys.stderr)
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            continue
        t1 = time.monotonic()
        row = {"name": "dp-%s-%d" % (run, i), "sent": t0, "ack": t1, "status": r.status, "incident": None}
        if 200 <= r.status < 300:
            try:
                doc = json.loads(data)
                res = doc["results"][0]
                row["incident"] = res.get("incident_id")
                row["outcome"] = res.get("outcome")
            except (ValueError, KeyError, IndexError):
                pass
            if row.get("outcome") != "opened":
                row["incident"] = None  # not a new incident: nothing to decide
        if row["incident"] is None:
            errors += 1
            print("alert %d: HTTP %d %s" % (i, r.status, data[:200]), file=sys.stderr)
        sent.append(row)
    end = time.monotonic()
    conn.close()

    # Wait for every approval request (or the timeout).
    deadline = time.monotonic() + timeout
    want = sum(1 for s in sent if s["incident"])
    while True:
        records = get_json(mock_url + "/_records")
        got = {m.group(1) for rec in records for m in [INCIDENT.search(rec["text"])] if m}
        if all(s["incident"] in got for s in sent if s["incident"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    first = {}
    for rec in records:
        m = INCIDENT.search(rec["text"])
        if m and "Approval needed" in rec["text"] and m.group(1) not in first:
            first[m.group(1)] = rec
    other = sum(1 for rec in records if "Approval needed" not in rec["text"])
    for s in sent:
        rec = first.get(s["incident"])
        s["approval"] = rec["t"] if rec else None
        if rec and ("cpu_" + s["name"]) not in rec["text"]:
            errors += 1
            print("%s: the approval request for incident %s does not name its metric" % (s["name"], s["incident"]),
                  file=sys.stderr)
    json.dump({
        "run": run, "rate": rate, "duration": duration, "planned": n, "errors": errors, "late": late,
        "send_seconds": end - start, "wanted": want, "approval_messages": len(first),
        "other_messages": other, "samples": sent,
    }, open(out, "w"))
    missing = sum(1 for s in sent if s["incident"] and s["approval"] is None)
    print("run %s: %d alerts in %.2f s, %d errors, %d late, %d approval requests, %d missing, %d other messages" % (
        run, len(sent), end - start, errors, late, want - missing, missing, other), file=sys.stderr)


# --- the report ---------------------------------------------------------------

def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def report(strict, target, rate, *outs):
    target = float(target)
    runs = [json.load(open(o)) for o in outs]
    bad = False
    print()
    print("decision path without an LLM: alert acknowledged (webhook 2xx) -> decision recorded -> "
          "approval request at the mock Telegram (sendMessage arrival), %s alerts/s" % rate)
    print("%-4s %7s %7s %7s %7s %7s | %8s %8s %8s | %8s %8s" % (
        "run", "alerts", "acked", "approv", "missing", "errors",
        "p50 ms", "p99 ms", "max ms", "ack p50", "ack p99"))
    p50s, p99s = [], []
    for r in runs:
        s = r["samples"]
        acked = [x for x in s if x["incident"]]
        lat = [(x["approval"] - x["ack"]) * 1000 for x in acked if x["approval"] is not None]
        ack = [(x["ack"] - x["sent"]) * 1000 for x in s]
        missing = len(acked) - len(lat)
        bad |= missing > 0 or r["errors"] > 0 or len(s) < r["planned"]
        p50, p99 = pct(lat, 50), pct(lat, 99)
        p50s.append(p50)
        p99s.append(p99)
        print("%-4s %7d %7d %7d %7d %7d | %8.2f %8.2f %8.2f | %8.2f %8.2f" % (
            r["run"], len(s), len(acked), len(lat), missing, r["errors"],
            p50, p99, max(lat) if lat else float("nan"), pct(ack, 50), pct(ack, 99)))
        fifth = len(acked) // 5
        if fifth >= 20:
            first = [(x["approval"] - x["ack"]) * 1000 for x in acked[:fifth] if x["approval"] is not None]
            last = [(x["approval"] - x["ack"]) * 1000 for x in acked[-fifth:] if x["approval"] is not None]
            print("     (first fifth of the run: p50 %.2f, p99 %.2f ms; last fifth: p50 %.2f, p99 %.2f ms)" % (
                pct(first, 50), pct(first, 99), pct(last, 50), pct(last, 99)))
        if r["late"]:
            print("     (the sender fell behind its schedule on %d alerts; achieved %.1f alerts/s)" % (
                r["late"], len(s) / r["send_seconds"] if r["send_seconds"] else 0))
        if r["other_messages"]:
            print("     (%d other messages at the mock)" % r["other_messages"])
    ok = bool(p99s) and statistics.median(p99s) < target and not bad
    print("p50 ms: min %.2f, median %.2f; p99 ms: min %.2f, median %.2f (over %d runs)" % (
        min(p50s), statistics.median(p50s), min(p99s), statistics.median(p99s), len(runs)))
    print("target: p99 < %g ms (median of the runs' p99): %s" % (target, "met" if ok else "MISSED"))
    if bad:
        print("FAILED: an alert got no approval request, or a request failed")
        sys.exit(1)
    sys.exit(1 if strict == "1" and not ok else 0)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "mock":
        mock(int(args[0]))
    elif cmd == "send":
        send(*args)
    elif cmd == "report":
        report(*args)
    else:
        sys.exit("unknown command %s (mock, send, report)" % cmd)
