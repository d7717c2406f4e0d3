#!/usr/bin/env bash
# `make dev` (after up, topics and schemas): prints where the stack listens, then runs every
# services/*/main.ts with the pinned Node, each line of output prefixed with the service's name,
# until Ctrl-C, which stops them all with SIGTERM (their graceful shutdown).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$DEPLOY_DIR/ctl.sh" status all || say "warning: part of the stack is down (make up starts it)"
say

cd "$REPO_ROOT"
shopt -s nullglob
mains=(services/*/main.ts)
if ((${#mains[@]} == 0)); then
  say "no services/*/main.ts exists yet: nothing to run"
  exit 0
fi

declare -A running=() # pid -> service name

# Push talks to FCM; in development it talks to the local FCM HTTP v1 emulator (HTTPS on loopback,
# its own CA), which logs what it receives.
fcm_ca="$DATA_DIR/fcm-emulator-ca.pem"
rm -f "$fcm_ca"
FCM_EMULATOR_PORT=8443 FCM_EMULATOR_CA_OUT="$fcm_ca" setsid ./node_modules/.bin/node test/fcm-emulator/main.ts > >(
  trap '' INT
  exec sed -u "s/^/[fcm-emulator] /"
) 2>&1 &
running[$!]=fcm-emulator
for _ in $(seq 50); do [[ -s "$fcm_ca" ]] && break; sleep 0.1; done
export FCM_PROJECT_ID=tidings-dev FCM_EMULATOR=127.0.0.1:8443 FCM_EMULATOR_CA="$fcm_ca"

# Email goes to the local SMTP sink, which stores every message as an .eml file; the bounce
# receiver and the sender share a VERP key ring, and the digest side signs unsubscribe links with
# its own; both are kept under .data so links and return paths stay verifiable across runs.
mail_dir="$DATA_DIR/mail"
SMTP_SINK_PORT=2525 SMTP_SINK_DIR="$mail_dir" setsid ./node_modules/.bin/node test/smtp-sink/main.ts > >(
  trap '' INT
  exec sed -u "s/^/[smtp-sink] /"
) 2>&1 &
running[$!]=smtp-sink
# dev_key FILE KEY_ID: a key ring entry `<id>:<base64 secret>`, made once and kept in FILE.
dev_key() {
  [[ -s $1 ]] || (umask 077 && printf '%s:%s\n' "$2" "$(head -c 32 /dev/urandom | base64 -w0)" >"$1")
  cat "$1"
}
export SMTP_URL=smtp://127.0.0.1:2525 VERP_DOMAIN=bounces.tidings.localhost
VERP_KEYS=$(dev_key "$DATA_DIR/dev-verp-keys" 1)
EMAIL_UNSUBSCRIBE_KEYS=$(dev_key "$DATA_DIR/dev-unsubscribe-keys" dev1)
export VERP_KEYS EMAIL_UNSUBSCRIBE_KEYS
say "email: SMTP goes to the dev sink on 127.0.0.1:2525; received mail is stored as .eml files in $mail_dir"

# The inbox accepts tokens the upstream app signs; in development this script signs one for the
# person "demo", valid for a day, and prints the page that uses it.
INBOX_TOKEN_KEYS=$(dev_key "$DATA_DIR/dev-inbox-token-keys" dev1)
export INBOX_TOKEN_KEYS INBOX_TOKEN_MAX_TTL=24h
inbox_token=$(./node_modules/.bin/node services/inbox/sign-token.ts demo 24h)
say "inbox: the bell page of user \"demo\" (token valid 24h): http://127.0.0.1:8110/#token=$inbox_token"
say "inbox: send demo a notification: echo '{\"event_id\":\"demo-'\$RANDOM'\",\"type\":\"edit-user-talk\",\"category\":\"edit-user-talk\",\"recipients\":[\"demo\"],\"title\":\"Hello from the docs\"}' | node_modules/.bin/node cli/tidings.ts publish notify.event -f -"

stop_services() {
  trap - INT TERM
  say "stopping ${running[*]}"
  kill -TERM "${!running[@]}" 2>/dev/null || true
  wait
}
trap 'stop_services; exit 130' INT
trap 'stop_services; exit 143' TERM

for main in "${mains[@]}"; do
  name=$(basename "$(dirname "$main")")
  # Each service gets its own session so Ctrl-C reaches only this script, which then asks every
  # service to shut down gracefully; the prefixer ignores Ctrl-C so the last lines still get through.
  setsid ./node_modules/.bin/node "$main" > >(
    trap '' INT
    exec sed -u "s/^/[$name] /"
  ) 2>&1 &
  running[$!]=$name
done
say "running ${running[*]}; Ctrl-C stops them"
say "mail sent in development: $mail_dir/*.eml"

while ((${#running[@]} > 0)); do
  status=0
  wait -n -p pid "${!running[@]}" || status=$?
  say "[${running[$pid]}] exited with status $status"
  unset "running[$pid]"
done
