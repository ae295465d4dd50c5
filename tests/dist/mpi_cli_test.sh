#!/usr/bin/env bash
# MPI tests of the sinklab binary under mpirun (registered in tests/CMakeLists.txt):
#   mpi_cli_test.sh sweep   SINKLAB MPIRUN...   a 2x2 sweep, --ranks_per_run 1 on 2 ranks, makes
#                                               4 finished run directories; started again it
#                                               skips all 4; a run whose DONE is gone resumes
#   mpi_cli_test.sh failure SINKLAB MPIRUN...   an error planted on rank 1 (as a returned
#                                               Status, a failed SL_CHECK and an uncaught
#                                               exception) ends the job non-zero within 60 s,
#                                               with rank 1's message
# MPIRUN is the launcher command with its flags, e.g. mpirun --allow-run-as-root --oversubscribe.
# Run from the repository root (the sweep's base config and the corpus are relative paths).
set -uo pipefail

mode=$1 sinklab=$2
shift 2
mpirun=("$@")
root=$(mktemp -d "${TMPDIR:-/tmp}/sinklab_mpi_cli.XXXXXX")
trap 'rm -rf "$root"' EXIT
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# Runs the command with a 60 s limit; sets $out (stdout + stderr) and $rc.
run() {
  out=$(timeout 60 "$@" 2>&1)
  rc=$?
}

sweep_test() {
  local sweep=(sweep tests/dist/sweep_2x2.textproto --ranks_per_run 1 --device cpu --quiet
               --set "train { run_root: '$root' }")
  run "${mpirun[@]}" -np 2 "$sinklab" "${sweep[@]}"
  [[ $rc == 0 ]] || fail "sweep exited $rc: $out"
  local label
  for label in softmax_lr3e-3 softmax_lr1e-3 softmax1_lr3e-3 softmax1_lr1e-3; do
    [[ -f $root/sweep_2x2/$label/DONE ]] || fail "no $root/sweep_2x2/$label/DONE"
    [[ -f $root/sweep_2x2/$label/model.safetensors ]] || fail "no model.safetensors in $label"
    grep -q "name: \"sweep_2x2_$label\"" "$root/sweep_2x2/$label/config.textproto" ||
      fail "$label/config.textproto does not name the run"
  done
  grep -q 'normalizer: SOFTMAX1' "$root/sweep_2x2/softmax1_lr1e-3/config.textproto" ||
    fail "the softmax1 axis value was not merged"
  grep -q 'lr: 0.001' "$root/sweep_2x2/softmax1_lr1e-3/config.textproto" ||
    fail "the lr1e-3 axis value was not merged"
  [[ $(ls "$root/sweep_2x2" | wc -l) == 4 ]] ||
    fail "expected 4 run directories: $(ls "$root/sweep_2x2")"
  grep -q "4 trained, 0 resumed, 0 already finished" <<<"$out" || fail "first summary: $out"

  run "${mpirun[@]}" -np 2 "$sinklab" "${sweep[@]}"
  [[ $rc == 0 ]] || fail "restarted sweep exited $rc: $out"
  grep -q "0 trained, 0 resumed, 4 already finished" <<<"$out" || fail "restart summary: $out"

  rm "$root/sweep_2x2/softmax_lr1e-3/DONE"
  run "${mpirun[@]}" -np 2 "$sinklab" "${sweep[@]}"
  [[ $rc == 0 ]] || fail "sweep with an unfinished run exited $rc: $out"
  grep -q "0 trained, 1 resumed, 3 already finished" <<<"$out" || fail "resume summary: $out"
  [[ -f $root/sweep_2x2/softmax_lr1e-3/DONE ]] || fail "the resumed run has no DONE"
}

failure_test() {
  local how
  for how in status check exception; do
    local start=$SECONDS
    run env SINKLAB_FAIL_RANK=1 SINKLAB_FAIL_STEP=2 SINKLAB_FAIL_HOW=$how \
      "${mpirun[@]}" -np 2 "$sinklab" train --device cpu --quiet \
      --set "train { steps: 20 batch_size: 4 run_root: '$root' } data { seq_len: 32 }" \
      --set "stats { every: 0 }"
    [[ $rc != 0 ]] || fail "$how: the job exited 0"
    [[ $rc != 124 ]] || fail "$how: the job hung (killed after 60 s)"
    grep -q "planted failure on rank 1 at step 2 (SINKLAB_FAIL_RANK, $how)" <<<"$out" ||
      fail "$how: rank 1's message is missing: $out"
    grep -q "sinklab rank 1/2: " <<<"$out" || fail "$how: no 'sinklab rank 1/2:' line: $out"
    echo "$how: exit $rc after $((SECONDS - start)) s"
  done
}

case $mode in
  sweep) sweep_test ;;
  failure) failure_test ;;
  *) echo "usage: $0 sweep|failure SINKLAB MPIRUN..."; exit 2 ;;
esac
[[ $failures == 0 ]] && echo "PASS ($mode)"
exit $((failures > 0))
