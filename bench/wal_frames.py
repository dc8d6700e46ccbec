#!/usr/bin/env python3
"""WAL frames a group commit of new alerts writes, by B-tree.

    python3 bench/wal_frames.py            # groups of 6, 16 and 50 alerts
    COMMITS=200 PREFILL=20000 python3 bench/wal_frames.py

Builds the SQLite store's schema (every migration in
infraai-store/src/sqlite/migrations, in order) in a scratch file, fills it
with PREFILL incidents in large groups, checkpoints, then makes COMMITS
groups of N new alerts each the way the store's writer does for the bench's
alerts (bench/server.lua: one incident row and one `alert_received` audit
row per alert, the open-fingerprint probe first). It reads the WAL's frame
headers back and names each frame's B-tree with `dbstat`, so it prints how
many 4 KiB frames a group writes, the WAL bytes per alert and where the
frames go. The rows are shaped like the store's (same columns, lengths and
JSON); SQLite is Python's, not the server's bundled one, which does not
change which pages a transaction dirties.
"""
import collections
import glob
import json
import os
import struct
import sqlite3
import tempfile
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITS = int(os.environ.get("COMMITS", "100"))
PREFILL = int(os.environ.get("PREFILL", "20000"))
SIZES = [int(n) for n in os.environ.get("SIZES", "6 16 50").split()]
AUDIT = ("id", "at", "step", "incident_id", "run_id", "actor", "input_json", "reasoning",
         "confidence", "outcome", "replica")


def schema():
    files = sorted(glob.glob(os.path.join(ROOT, "infraai-store/src/sqlite/migrations/*.sql")))
    return "\n".join(open(f).read() for f in files)


def alert_rows(i):
    """The incident and audit rows the store writes for the bench's i-th alert."""
    iid = "%012x-7%03x-%s" % (i, i % 4096, str(uuid.uuid4())[15:])  # time-ordered, as UUID v7
    fp = "r1-t%d-%d" % (i % 2, i // 2)  # bench/server.lua: two wrk threads, a counter each
    labels = {"alertname": "BenchHighCPU", "instance": fp, "severity": "warning", "job": "bench"}
    raw = {"status": "firing", "labels": labels, "annotations": {"value": "0.97", "summary": "bench"},
           "startsAt": "2026-11-25T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
           "generatorURL": "http://bench/", "fingerprint": fp}
    t = "2026-12-07T23:%02d:%02d.%09dZ" % (i // 60000 % 60, i // 1000 % 60, i)
    incident = dict(id=iid, fingerprint=fp, status="pending", source="alertmanager",
                    policy_name="BenchHighCPU", resource=fp, resource_type="instance", cloud="local",
                    metric="cpu", value=0.97, threshold=None, severity="warning", alert_state="firing",
                    started_at=t, labels_json=json.dumps(labels), raw_json=json.dumps(raw),
                    occurrences=1, decision_json=None, guardrail_notes_json="[]", deployment_id=None,
                    note=None, created_at=t, updated_at=t)
    audit_input = {"source": "alertmanager", "policy": "BenchHighCPU", "resource": fp, "metric": "cpu",
                   "value": 0.97, "threshold": None, "state": "firing", "fingerprint": fp}
    audit_id = "%012x-7%03x-%s" % (i, (i + 1) % 4096, str(uuid.uuid4())[15:])
    audit = (audit_id, t, "alert_received", iid, None, "agent", json.dumps(audit_input),
             None, None, "opened", "r1")
    return incident, audit


def measure(n):
    work = tempfile.mkdtemp(prefix="wal-frames.")
    path = os.path.join(work, "infraai.db")
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("PRAGMA synchronous = OFF")
    c.execute("PRAGMA wal_autocheckpoint = 0")
    c.executescript(schema())
    cols = [r[1] for r in c.execute("PRAGMA table_info(incidents)")]
    insert_incident = "INSERT INTO incidents (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols)))
    insert_audit = "INSERT INTO audit (%s) VALUES (%s)" % (",".join(AUDIT), ",".join("?" * len(AUDIT)))
    probe = "SELECT id FROM incidents WHERE fingerprint = ? AND status NOT IN ('resolved', 'expired')"
    count = [0]

    def group(k):
        c.execute("BEGIN IMMEDIATE")
        for _ in range(k):
            incident, audit = alert_rows(count[0])
            count[0] += 1
            c.execute(probe, (incident["fingerprint"],)).fetchall()
            c.execute(insert_incident, [incident[k] for k in cols])
            c.execute(insert_audit, audit)
        c.execute("COMMIT")

    for _ in range(PREFILL // 500):
        group(500)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for _ in range(COMMITS):
        group(n)
    wal = open(path + "-wal", "rb").read()
    page_size = struct.unpack(">I", wal[8:12])[0]
    frames, offset = [], 32
    while offset + 24 + page_size <= len(wal):
        frames.append(struct.unpack(">I", wal[offset:offset + 4])[0])
        offset += 24 + page_size
    owner = {p: (name, kind) for name, p, kind in c.execute("SELECT name, pageno, pagetype FROM dbstat")}
    by_tree = collections.Counter()
    for p in frames:
        name, kind = owner.get(p, ("(freed)", ""))
        by_tree[name + (" (interior)" if kind == "internal" else "")] += 1
    c.close()
    for f in glob.glob(path + "*"):
        os.remove(f)
    os.rmdir(work)
    return len(frames), len(wal), by_tree


def main():
    print("WAL frames per group commit of new alerts (SQLite store schema; %d groups after %d incidents)"
          % (COMMITS, PREFILL))
    for n in SIZES:
        frames, size, by_tree = measure(n)
        print()
        print("groups of %d alerts: %.1f frames per group, %.0f WAL bytes per alert"
              % (n, frames / COMMITS, size / COMMITS / n))
        for name, k in by_tree.most_common():
            print("  %-44s %6.2f frames per group" % (name, k / COMMITS))


if __name__ == "__main__":
    main()
