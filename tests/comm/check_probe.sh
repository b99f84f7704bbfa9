#!/usr/bin/env bash
# Runs comm_probe under mpiexec and checks from outside what a user would see.
#   check_probe.sh MODE MPIEXEC NPROC_FLAG PROBE
# agree-one:      exit 0 (every rank got false), rank 0's stderr names the failing rank once
# agree-several:  one line per distinct error, each naming its ranks
# agree-none:     exit 0, nothing on stderr from agree
# abort:          non-zero exit within 10 s, "swarm_pipe: rank 1: <message>" on stderr
set -uo pipefail
mode=$1 mpiexec=$2 np_flag=$3 probe=$4
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
fail() { echo "FAIL ($mode): $*"; echo "--- stdout"; cat "$out"; echo "--- stderr"; cat "$err"; exit 1; }

start_ms=$(( $(date +%s%N) / 1000000 ))
"$mpiexec" "$np_flag" 4 --oversubscribe "$probe" "$mode" >"$out" 2>"$err"
code=$?
elapsed_ms=$(( $(date +%s%N) / 1000000 - start_ms ))
elapsed="$((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))"

count() { grep -c -F -- "$1" "$err"; }
case $mode in
  agree-one)
    [[ $code -eq 0 ]] || fail "exit code $code, expected 0 (agree must return false on every rank)"
    [[ $(grep -c "agree returned false" "$out") -eq 4 ]] || fail "not every rank returned false"
    [[ $(count "swarm_pipe: rank 3: cannot read job file 'x.job': no such file") -eq 1 ]] || fail "message missing or repeated"
    [[ $(grep -c "^swarm_pipe:" "$err") -eq 1 ]] || fail "more than one message"
    ;;
  agree-several)
    [[ $code -eq 0 ]] || fail "exit code $code, expected 0"
    [[ $(count "swarm_pipe: ranks 1,3: blocks 0-7 do not fit: 9.1 GiB needed, 8.0 GiB free") -eq 1 ]] || fail "grouped message"
    [[ $(count "swarm_pipe: rank 2: weights.safetensors: tensor 'layers.3.mlp' missing") -eq 1 ]] || fail "rank 2's message"
    [[ $(grep -c "^swarm_pipe:" "$err") -eq 2 ]] || fail "expected exactly two messages"
    ;;
  agree-none)
    [[ $code -eq 0 ]] || fail "exit code $code"
    [[ $(grep -c "agree returned true" "$out") -eq 4 ]] || fail "not every rank returned true"
    [[ $(grep -c "^swarm_pipe:" "$err") -eq 0 ]] || fail "unexpected message"
    ;;
  abort)
    [[ $code -ne 0 ]] || fail "exit code 0 after abort_job"
    (( elapsed_ms < 10000 )) || fail "took ${elapsed}s to bring the job down"
    [[ $(count "swarm_pipe: rank 1: peer 3 stopped answering (test abort)") -eq 1 ]] || fail "abort message"
    ;;
  *) fail "unknown mode" ;;
esac
echo "PASS ($mode): exit $code in ${elapsed}s"
