"""Driver of bench/deploy-overhead.sh (see its header): interleaved rounds of
one infraai deploy on the local cloud and the same Terraform files run by
hand, then the table.

Usage: deploy_overhead.py <server binary> <work dir>
Environment: RUNS, WARMUP, GOAL, STRICT, TERRAFORM_BIN (and the terraform
environment bench/deploy-overhead.sh sets up).
"""
import datetime
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

SERVER_BIN, WORK = sys.argv[1], sys.argv[2]
RUNS = int(os.environ.get("RUNS", "5"))
WARMUP = int(os.environ.get("WARMUP", "1"))
GOAL = os.environ.get("GOAL", "a backend API for 10k users under $100/month")
STRICT = os.environ.get("STRICT", "0") == "1"
TF = os.environ.get("TERRAFORM_BIN") or "terraform"
TOKEN = "bench-operator"
TARGET = 5.0
TERMINAL = {"verified", "deploy_success_verify_failed", "completed", "failed", "paused_by_kill_switch"}

# The runner's (infraai-terraform/src/runner/) commands, flags and
# environment, in the order of a deploy. `show` (the saved plan as JSON) and
# `state` (`show -json` of the state, when the apply did not report its
# outputs and resources) have no counterpart by hand; `output` none in the
# server.
RAW = [
    ("init", ["init", "-input=false", "-no-color"]),
    ("validate", ["validate", "-json", "-no-color"]),
    ("plan", ["plan", "-input=false", "-json", "-out=infraai.tfplan"]),
    ("apply", ["apply", "-input=false", "-json", "-auto-approve", "infraai.tfplan"]),
    ("output", ["output", "-json", "-no-color"]),
]
TF_ENV = dict(os.environ, TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
FINISHED = re.compile(r'^(\S+Z) .*terraform finished op="?(\w+)"? dir=(\S+) .*elapsed_ms=(\d+)')
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log(msg):
    print("== " + msg, file=sys.stderr, flush=True)


def fail(msg):
    log("FAILED: " + msg)
    sys.exit(1)


def ts(text):
    """An RFC 3339 UTC timestamp (nanoseconds allowed) as epoch seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", text)
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return base.timestamp() + float("0." + (m.group(2) or "0"))


class Server:
    """infraai-server on the local cloud, a fresh data directory, a free port."""

    def __init__(self, data):
        self.data = data
        os.makedirs(data)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAAI_")}
        for k in ("GEMINI_API_KEY", "RUST_LOG"):
            env.pop(k, None)
        env.update(INFRAAI_OPERATOR_TOKEN=TOKEN, INFRAAI_WEBHOOK_TOKEN="bench-webhook", RUST_LOG="info")
        self.out = data + ".out"
        self.err = data + ".log"
        self.proc = subprocess.Popen(
            [SERVER_BIN, "--listen", "127.0.0.1:0", "--data-dir", data, "--cloud", "local"],
            stdout=open(self.out, "w"), stderr=open(self.err, "w"), env=env)
        deadline = time.time() + 60
        self.base = None
        while time.time() < deadline and self.base is None:
            if self.proc.poll() is not None:
                fail("infraai-server exited at start: " + open(self.out).read() + open(self.err).read()[-2000:])
            for line in open(self.out):
                if line.startswith("listening on "):
                    self.base = line.split()[-1]
            time.sleep(0.05)
        if self.base is None:
            fail("infraai-server did not start within 60 s")
        if not any(l.startswith("cloud: local") for l in open(self.out)):
            fail("infraai-server is not on the local cloud: " + open(self.out).read())
        self.call("GET", "/healthz")

    def call(self, method, path, body=None, stream=False):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Authorization", "Bearer " + TOKEN)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            r = urllib.request.urlopen(req, timeout=600)
        except urllib.error.HTTPError as e:
            fail("%s %s: HTTP %d %s" % (method, path, e.code, e.read()[:2000]))
        return r if stream else json.loads(r.read() or b"null")

    def wait_end(self, run_id):
        """Reads the run's event stream up to its terminal phase: that phase."""
        r = self.call("GET", "/runs/%s/events" % run_id, stream=True)
        with r:
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    ev = json.loads(line[6:])
                    if ev.get("type") == "phase" and ev.get("phase") in TERMINAL:
                        return ev["phase"]
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def finished_ops(self, run_id):
        """(op, ms, end) of every terraform command the server ran for the
        run, in the order they finished (end: epoch seconds)."""
        ops = []
        for line in open(self.err, errors="replace"):
            m = FINISHED.search(ANSI.sub("", line).strip())
            if m and m.group(3).rstrip("/").endswith(run_id):
                ops.append((m.group(2), int(m.group(4)), ts(m.group(1))))
        return ops


def tf(args, cwd, out):
    t = time.monotonic()
    with open(out, "w") as f:
        rc = subprocess.run([TF] + args, cwd=cwd, env=TF_ENV, stdout=f, stderr=subprocess.STDOUT).returncode
    ms = (time.monotonic() - t) * 1000
    if rc != 0:
        fail("terraform %s in %s exited %d: %s" % (" ".join(args), cwd, rc, open(out).read()[-2000:]))
    return ms


def destroy(cwd, what):
    tf(["destroy", "-input=false", "-auto-approve", "-no-color"], cwd, os.path.join(cwd, "destroy.log"))


def infraai_round(n):
    """One deploy through the API on a fresh server; its figures and files."""
    srv = Server(os.path.join(WORK, "data-%s" % n))
    try:
        t = time.monotonic()
        planned = srv.call("POST", "/generate-graph", {"goal": GOAL})
        plan_ms = (time.monotonic() - t) * 1000
        run_id = planned["run_id"]
        t = time.monotonic()
        files = srv.call("POST", "/generate_terraform", {"run_id": run_id})["files"]
        files_ms = (time.monotonic() - t) * 1000
        wall0 = time.time()
        t = time.monotonic()
        srv.call("POST", "/execute", {"run_id": run_id, "dry_run": False})
        end = srv.wait_end(run_id)
        total_ms = (time.monotonic() - t) * 1000
        wall1 = time.time()
        run = srv.call("GET", "/runs/%s" % run_id)["run"]
    finally:
        srv.stop()
    ws = os.path.join(srv.data, "terraform", run_id)
    if end != "verified" or run["phase"] != "verified":
        log("server log tail:\n" + ANSI.sub("", open(srv.err, errors="replace").read())[-3000:])
        if os.path.exists(os.path.join(ws, "terraform.tfstate")):
            destroy(ws, "the failed run")
        fail("run %s ended %s (%s)" % (run_id, run["phase"], run.get("error")))
    # Phase durations (server clock = this machine's clock), POST → first
    # phase and last phase → client as their own rows.
    hist = [(h["phase"], ts(h["at"])) for h in run["history"] if ts(h["at"]) >= wall0 - 0.001]
    # Each phase's terraform time: how long at least one command ran in it
    # (a command beside another counts once).
    ops = srv.finished_ops(run_id)
    phases = {"request → initializing": (hist[0][1] - wall0) * 1000}
    in_tf = {}
    for (p, a), (_, b) in zip(hist, hist[1:]):
        key = re.sub(r"_\d+$", "_N", p)
        phases[key] = phases.get(key, 0) + (b - a) * 1000
        in_tf[key] = in_tf.get(key, 0) + busy(ops, a, b)
    phases["verified → client"] = (wall1 - hist[-1][1]) * 1000
    # Copy the files the run used (configuration and variables only).
    raw_dir = os.path.join(WORK, "raw-%s" % n)
    os.makedirs(raw_dir)
    copied = {}
    for pat in ("*.tf", "*.tf.json", "*.tfvars", "*.tfvars.json"):
        for f in glob.glob(os.path.join(ws, pat)):
            shutil.copy(f, raw_dir)
            copied[os.path.basename(f)] = open(f).read()
    if copied != run["files"]["files"]:
        fail("the run's directory %s does not hold the run's files" % ws)
    destroy(ws, "infraai's run")
    return {
        "total": total_ms,
        "verify": phases.get("verifying", 0),
        "phases": phases,
        "in_tf": in_tf,
        "tf_busy": busy(ops, wall0, wall1),
        "ops": ops,
        "plan_ms": plan_ms,
        "files_ms": files_ms,
        "fixes": len(run.get("fix_attempts") or []),
        "retries": len(run.get("apply_diagnoses") or []),
        "files": sorted(copied),
    }, raw_dir


def busy(ops, start, end):
    """Milliseconds within [start, end] in which at least one of `ops` ran."""
    spans = sorted((max(e - ms / 1000, start), min(e, end)) for _, ms, e in ops)
    total, reach = 0.0, start
    for a, b in spans:
        a = max(a, reach)
        if b > a:
            total += b - a
            reach = b
    return total * 1000


def beside(ops, name):
    """Whether command `name` ran beside another one (its span overlaps)."""
    spans = [(e - ms / 1000, e, op) for op, ms, e in ops]
    return any(op == name and any(o != name and a < e2 and a2 < e for a2, e2, o in spans)
               for a, e, op in spans)


def raw_round(raw_dir):
    ops = []
    t = time.monotonic()
    for name, args in RAW:
        ops.append((name, tf(args, raw_dir, os.path.join(raw_dir, name + ".log"))))
    total = (time.monotonic() - t) * 1000
    # Untimed: the service the files start answers, as infraai verified.
    urls = json.loads(open(os.path.join(raw_dir, "output.log")).read()).get("urls", {}).get("value", {})
    for url in urls.values():
        urllib.request.urlopen(url, timeout=10).read()
    destroy(raw_dir, "terraform by hand")
    return {"total": total, "ops": ops}


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def main():
    load_before = loadavg()
    inf, raw = [], []
    for n in range(-WARMUP + 1, RUNS + 1):
        tag = "warm-up" if n <= 0 else "round %d/%d" % (n, RUNS)
        a, d = infraai_round(n if n > 0 else "w%d" % -n)
        b = raw_round(d)
        log("%s: infraai %.0f ms (verify %.0f), raw terraform %.0f ms" % (tag, a["total"], a["verify"], b["total"]))
        if n > 0:
            inf.append(a)
            raw.append(b)
    load_after = loadavg()
    report(inf, raw, load_before, load_after)


def report(inf, raw, load_before, load_after):
    med = statistics.median
    it = [r["total"] for r in inf]
    inv = [r["total"] - r["verify"] for r in inf]
    rt = [r["total"] for r in raw]
    n = len(inf)
    missed = False

    def pct(a, b):
        return (a / b - 1) * 100

    print()
    print("deploy pipeline overhead over raw terraform (%d interleaved rounds; goal %r; %s, terraform %s)"
          % (n, GOAL, os.path.basename(SERVER_BIN), os.environ.get("TERRAFORM_VERSION", "?")))
    print("%-58s %9s %9s" % ("wall time, ms", "min", "median"))
    print("%-58s %9.0f %9.0f" % ("infraai: POST /execute → verified (event stream)", min(it), med(it)))
    print("%-58s %9.0f %9.0f" % ("infraai minus its verifying phase (HTTP check)", min(inv), med(inv)))
    print("%-58s %9.0f %9.0f" % ("raw terraform: init, validate, plan, apply, output", min(rt), med(rt)))
    for label, xs in (("overhead, run total vs raw", it), ("overhead, run minus verify vs raw", inv)):
        o_min, o_med = pct(min(xs), min(rt)), pct(med(xs), med(rt))
        verdict = "met" if o_min < TARGET and o_med < TARGET else "MISSED"
        if label.startswith("overhead, run total"):
            missed = verdict == "MISSED"
        print("%-58s %+8.1f%% %+8.1f%%   target < %.0f %%: %s (%+.0f ms at the median)"
              % (label, o_min, o_med, TARGET, verdict, med(xs) - med(rt)))
    # The server takes the outputs from the apply's own events and asks no
    # `terraform output`: its overhead over the four commands it shares.
    r4 = [r["total"] - sum(ms for op, ms, *_ in r["ops"] if op == "output") for r in raw]
    print("%-58s %+8.1f%% %+8.1f%%   (information: infraai runs no `output`)"
          % ("overhead, run total vs raw without output", pct(min(it), min(r4)), pct(med(it), med(r4))))

    # Terraform commands side by side (median ms per round).
    def per_op(rounds):
        out = {}
        for r in rounds:
            seen = {}
            for op, ms, *_ in r["ops"]:
                seen[op] = seen.get(op, 0) + ms
            for op, ms in seen.items():
                out.setdefault(op, []).append(ms)
        return {op: med(v) for op, v in out.items()}

    io, ro = per_op(inf), per_op(raw)
    print()
    print("terraform commands (median ms; infraai's from the server's \"terraform finished\" log)")
    print("%-44s %9s %9s %9s" % ("", "infraai", "by hand", "delta"))
    show_beside = all(beside(r["ops"], "show") for r in inf)
    names = {
        "init": "init -input=false -no-color",
        "validate": "validate -json -no-color",
        "plan": "plan -input=false -json -out=…",
        "show": "show -json <saved plan> (infraai only%s)" % (", beside apply" if show_beside else ""),
        "apply": "apply -input=false -json -auto-approve <plan>",
        "output": "output -json -no-color",
        "state": "show -json <state> (infraai only)",
    }
    for op in list(names) + sorted(set(io) - set(names)):
        if op in io or op in ro:
            a, b = io.get(op, 0), ro.get(op, 0)
            print("%-44s %9.0f %9s %+9.0f" % (names.get(op, op), a, "%.0f" % b if op in ro else "—", a - b))
    tf_inf = [r["tf_busy"] for r in inf]
    print("%-44s %9.0f %9.0f %+9.0f" % ("terraform running (beside counted once)", med(tf_inf), med(rt),
                                       med(tf_inf) - med(rt)))

    # Where the run's time goes, by phase.
    print()
    print("infraai's run by phase (median ms; terraform = while a command ran, other = the rest)")
    print("%-44s %9s %9s %9s" % ("phase", "total", "terraform", "other"))
    order = []
    for r in inf:
        for k in r["phases"]:
            if k not in order:
                order.append(k)
    for k in order:
        tot = [r["phases"].get(k, 0) for r in inf]
        cmd = [r["in_tf"].get(k, 0) for r in inf]
        oth = [t - c for t, c in zip(tot, cmd)]
        print("%-44s %9.0f %9.0f %9.0f" % (k, med(tot), med(cmd), med(oth)))
    print("%-44s %9.0f %9.0f %9.0f" % ("run", med(it), med(tf_inf), med([t - c for t, c in zip(it, tf_inf)])))

    # The difference, round by round (each infraai round against the raw
    # round that ran its files), split by cause.
    raw_ops = {name for name, _ in RAW}
    parts = {
        "terraform running, infraai minus by hand":
            [r["tf_busy"] - b["total"] for r, b in zip(inf, raw)],
        "  of it: commands by hand has too, infraai minus by hand":
            [sum(ms for op, ms, _ in r["ops"] if op in raw_ops) - b["total"] for r, b in zip(inf, raw)],
        "verifying phase (HTTP check of the service)": [r["verify"] for r in inf],
        "the rest (HTTP, store writes, files, locks, events)":
            [r["total"] - r["tf_busy"] - r["verify"] for r in inf],
    }
    print()
    print("where infraai's time over raw terraform goes (median of per-round differences, ms)")
    print("%-58s %9.0f" % ("infraai minus raw", med([r["total"] - b["total"] for r, b in zip(inf, raw)])))
    for label, xs in parts.items():
        print("  %-56s %9.0f" % (label, med(xs)))

    print()
    print("not compared (before the deploy): plan the goal (POST /generate-graph) %.0f ms, write the Terraform "
          "(POST /generate_terraform) %.0f ms (median)" % (med([r["plan_ms"] for r in inf]), med([r["files_ms"] for r in inf])))
    print("validate → fix attempts: %d, apply diagnoses/retries: %d (over all rounds); files: %s"
          % (sum(r["fixes"] for r in inf), sum(r["retries"] for r in inf), ", ".join(inf[0]["files"])))
    spread_i, spread_r = max(it) / min(it), max(rt) / min(rt)
    disturbed = spread_i > 1.25 or spread_r > 1.25 or float(load_before) > 1.0 or float(load_after) > 1.5
    print("spread max/min: infraai %.2f, raw %.2f; load average (1 min) %s before, %s after; %s"
          % (spread_i, spread_r, load_before, load_after,
             "figures look DISTURBED (noisy machine): trust the min more than the median" if disturbed
             else "figures look steady"))
    if missed and STRICT:
        sys.exit(1)


if __name__ == "__main__":
    main()
