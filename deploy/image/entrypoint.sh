#!/bin/sh
# The image's entry point: `<service> [args]` runs services/<service>/main.ts, `tidings [args]`
# the operations command. It execs, so node replaces this shell as PID 1 and gets SIGTERM directly.
set -eu
what=${1:-help}
[ "$#" -gt 0 ] && shift
case $what in
  tidings) exec node /app/cli/tidings.ts "$@" ;;
  help | --help | -h) ;;
  *)
    if [ -f "/app/services/$what/main.ts" ]; then exec node "/app/services/$what/main.ts" "$@"; fi
    echo "unknown command: $what" >&2
    ;;
esac
echo "usage: <service> | tidings [args]; services: $(ls /app/services | tr '\n' ' ')" >&2
[ "$what" = help ] || [ "$what" = --help ] || [ "$what" = -h ]
