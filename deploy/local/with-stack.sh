#!/usr/bin/env bash
# `make test` / `make bench`: runs a command against the local stack.
#
#   deploy/local/with-stack.sh COMMAND [ARG...]
#
# Starts the parts that are not running, runs the command, then stops the parts it started (and
# only those, so a stack you brought up with `make up` stays up). Exits with the command's status;
# when that is a failure, prints the last 40 lines of every part's log first.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# > 0)) || die "usage: with-stack.sh COMMAND [ARG...]"

started=()
for part in "${STACK_PARTS[@]}"; do
  part_pid "$part" >/dev/null || started+=("$part")
done

# shellcheck disable=SC2317 # called by the EXIT trap
stop_started() {
  if ((${#started[@]} > 0)); then
    say "stopping what with-stack.sh started: ${started[*]}"
    bash "$DEPLOY_DIR/ctl.sh" stop "${started[@]}"
  fi
}
trap stop_started EXIT
# Ctrl-C or a kill still stops the stack (through the EXIT trap).
trap 'exit 130' INT
trap 'exit 143' TERM

if ((${#started[@]} > 0)); then
  if ! bash "$DEPLOY_DIR/up.sh"; then
    bash "$DEPLOY_DIR/ctl.sh" logs all
    exit 1
  fi
fi

status=0
"$@" || status=$?
if ((status != 0)); then
  TIDINGS_LOG_LINES=40 bash "$DEPLOY_DIR/ctl.sh" logs all
fi
exit "$status"
