#!/usr/bin/env bash
# `make status`: one line per part of the local stack; exits 1 if any part is down.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/ctl.sh" status all
