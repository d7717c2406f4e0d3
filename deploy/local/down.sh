#!/usr/bin/env bash
# `make down`: stops every part of the local stack (SIGTERM, SIGKILL after $TIDINGS_STOP_TIMEOUT
# seconds). Data under $TIDINGS_DATA_DIR is kept; `make clean` wipes it.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/ctl.sh" stop all
