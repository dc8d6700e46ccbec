#!/usr/bin/env bash
# Deploy pipeline overhead over raw `terraform`, one command from a clean clone:
#
#   bench/deploy-overhead.sh
#
# Target: a deploy through infraai takes < 5 % longer than the same Terraform
# files run by hand (init, validate, plan, apply, output).
#
# RUNS interleaved rounds (after WARMUP untimed ones) of:
#   infraai  a fresh infraai-server (local cloud: real Terraform, real
#            processes; fresh data directory, SQLite store) plans GOAL
#            (POST /generate-graph) and writes its Terraform
#            (POST /generate_terraform), untimed; then timed: POST /execute
#            until the run's event stream (GET /runs/{id}/events) says
#            `verified`. The server's phase history (GET /runs/{id}) and its
#            "terraform finished" log lines (per command, elapsed_ms) say
#            where the time went. Afterwards the server is stopped and
#            `terraform destroy` runs in the run's directory
#            (DATA_DIR/terraform/<run id>), untimed: POST /runs/{id}/destroy
#            only destroys failed runs.
#   raw      the files the run used (*.tf, *.tf.json, *.tfvars*, copied from
#            its directory and checked against the run's record; never
#            .terraform, state or the plan) in a fresh directory, timed:
#            init, validate, plan, apply, output; then untimed: a GET of the
#            service the outputs name, and `terraform destroy`.
# Matched with the server's runner (infraai-terraform/src/runner/): the
# same binary (TERRAFORM_BIN), environment (TF_CLI_CONFIG_FILE and the
# provider mirror of terraform-env.sh, TF_IN_AUTOMATION=1, TF_INPUT=0,
# CHECKPOINT_DISABLE=1) and flags: `init -input=false -no-color`,
# `validate -json -no-color`, `plan -input=false -json -out=<file>`,
# `apply -input=false -json -auto-approve <file>`, `output -json -no-color`
# (by hand; the server takes the outputs from the apply's `outputs` event).
# What the server does that the commands by hand do not: `show -json` of the
# saved plan (its change set with attributes, and the resources the apply
# leaves), beside the apply once that began changing resources; the store
# writes of each phase (beside
# the steps that change nothing: init, validate, plan, the HTTP check), the
# HTTP verification of the service (the `verifying` phase), storing the
# deployment; a validate → fix loop or apply retries when needed (counted;
# none for this goal). Each is listed with its time; a command beside another
# counts once in the time terraform was running.
#
# Prints the wall time of both (min / median), the overhead
# (infraai / raw - 1, on the min and on the median) for the whole run and for
# the run minus its verifying phase against the 5 % target ("met" /
# "MISSED"), the commands side by side, the run by phase, and the spread and
# load average (noisy figures are flagged). Exits non-zero when a deploy or a
# command fails; STRICT=1 also when the run total misses the target at the
# median or the min.
#
# Environment: RUNS (5), WARMUP (1), GOAL ("a backend API for 10k users
# under $100/month"), SERVER_BIN (else built in release), STRICT=1,
# SMOKE=1 (a short CI smoke: RUNS=1 WARMUP=0). Terraform: as
# scripts/test-all.sh, the surrounding checkout's offline helper
# (../shared/tools/terraform-env.sh, or INFRAAI_TF_ENV_SCRIPT) when it
# exists, else TERRAFORM_BIN, else `terraform` on PATH (the local cloud's
# files need no provider: terraform_data is built in).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
# shellcheck source=bench/lib.sh
. "$bench/lib.sh"
if [ "${SMOKE:-0}" = 1 ]; then
  RUNS=1
  WARMUP=0
fi
export RUNS=${RUNS:-5} WARMUP=${WARMUP:-1} STRICT=${STRICT:-0}
need python3 python3

tf_env="${INFRAAI_TF_ENV_SCRIPT:-$root/../shared/tools/terraform-env.sh}"
if [ -x "$tf_env" ]; then
  eval "$("$tf_env")"
  log "terraform: $TERRAFORM_BIN ($TERRAFORM_VERSION, from $tf_env)"
elif [ -n "${TERRAFORM_BIN:-}" ]; then
  log "terraform: $TERRAFORM_BIN (TERRAFORM_BIN)"
elif command -v terraform >/dev/null 2>&1; then
  TERRAFORM_BIN=$(command -v terraform)
  log "terraform: $TERRAFORM_BIN (PATH)"
else
  log "no terraform: $tf_env is missing, TERRAFORM_BIN is not set and there is no terraform on PATH; install terraform (>= 1.4) or set TERRAFORM_BIN"
  exit 1
fi
export TERRAFORM_BIN
"$TERRAFORM_BIN" version >/dev/null 2>&1 || { log "terraform ($TERRAFORM_BIN) does not run"; exit 1; }
TERRAFORM_VERSION=${TERRAFORM_VERSION:-$("$TERRAFORM_BIN" version | sed -n '1s/^Terraform v//p')}
export TERRAFORM_VERSION

server_bin=$(server_binary)
[ -x "$server_bin" ] || { log "no server binary at $server_bin"; exit 1; }

# The local cloud's instances run in their own sessions: stop any a failed
# round left behind (their pid files are under the work directory).
stop_instances() {
  local f
  for f in "$work"/data-*/local/instances/*/pid; do
    [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
}
trap 'stop_instances; cleanup' EXIT

log "$RUNS round(s) after $WARMUP warm-up round(s); work directory $work"
python3 "$bench/deploy_overhead.py" "$server_bin" "$work"
