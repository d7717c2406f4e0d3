# shellcheck shell=bash
# Shared by the local-stack scripts (sourced, not run): paths, pinned distributions, process control,
# PostgreSQL access. The scripts that source it run with `set -euo pipefail`.

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$DEPLOY_DIR/../.." && pwd)

DATA_DIR=${TIDINGS_DATA_DIR:-$REPO_ROOT/.data}
LOG_DIR=$DATA_DIR/logs
RUN_DIR=$DATA_DIR/run
# Certificates and the SASL password of the secured listeners (ctl.sh ensure_security).
SECURITY_DIR=$DATA_DIR/security
# shellcheck disable=SC2034 # used by the scripts that source this file
KAFKA_USER=tidings

# How long a part may take to answer after it was launched, and to exit after SIGTERM.
START_TIMEOUT=${TIDINGS_START_TIMEOUT:-120}
STOP_TIMEOUT=${TIDINGS_STOP_TIMEOUT:-30}

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}

# Every port of the stack moves by this much, so two checkouts can each run a stack on one machine
# (libs/config/common.ts shifts the services' local defaults the same way).
PORT_OFFSET=${TIDINGS_PORT_OFFSET:-0}
# ... and keeps its application database apart: tidings, or tidings_<offset>.
APP_DATABASE=tidings$( ((PORT_OFFSET == 0)) || printf '_%s' "$PORT_OFFSET")
[[ $PORT_OFFSET =~ ^[0-9]+$ ]] || { printf 'error: TIDINGS_PORT_OFFSET=%s is not a whole number\n' "$PORT_OFFSET" >&2; exit 1; }

# The parts ctl.sh controls, in the order they are listed.
# shellcheck disable=SC2034 # used by the scripts that source this file
STACK_PARTS=(eqiad codfw mirror registry)

say() { printf '%s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# The versions live in pom.xml only; read them from there.
pom_property() {
  local value
  value=$(sed -n "s:.*<$1>\([^<]*\)</$1>.*:\1:p" "$DEPLOY_DIR/pom.xml" | head -n 1)
  [[ -n $value ]] || die "property <$1> missing from $DEPLOY_DIR/pom.xml"
  printf '%s' "$value"
}
KAFKA_VERSION=$(pom_property kafka.version)
APICURIO_VERSION=$(pom_property apicurio.version)
LOG4J_VERSION=$(pom_property log4j.version)

CACHE_DIR=${TIDINGS_CACHE_DIR:-$HOME/.cache/tidings}/kafka-${KAFKA_VERSION}_apicurio-${APICURIO_VERSION}_log4j-${LOG4J_VERSION}
KAFKA_LIBS=$CACHE_DIR/kafka/libs
APICURIO_JAR=$CACHE_DIR/apicurio/apicurio-registry-app-$APICURIO_VERSION-runner.jar

# ---------------------------------------------------------------------------------------------
# Prerequisites

require_java() {
  command -v java >/dev/null ||
    die "java not found: install a Java 17+ runtime, e.g. 'apt-get install openjdk-17-jre-headless'"
  local version major
  # `java -version` prints e.g.: openjdk version "17.0.15" 2025-04-15
  version=$(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n 1)
  major=${version%%.*}
  [[ $major =~ ^[0-9]+$ && $major -ge 17 ]] ||
    die "java ${version:-of unknown version} is too old: Kafka 4 and Apicurio 3 need Java 17+ ('apt-get install openjdk-17-jre-headless')"
}

require_psql() {
  command -v psql >/dev/null ||
    die "psql not found: install the PostgreSQL client, e.g. 'apt-get install postgresql-client'"
}

# Splits DATABASE_URL (postgres://user[:password]@host[:port][/anything]) into PG_* variables.
# The path, if any, is ignored: the scripts manage their own databases on that server.
parse_database_url() {
  local re='^postgres(ql)?://(([^:@/]*)(:([^@/]*))?@)?([^:/?]+)(:([0-9]+))?(/.*)?$'
  [[ $DATABASE_URL =~ $re ]] ||
    die "DATABASE_URL=$DATABASE_URL is not of the form postgres://user[:password]@host[:port]"
  PG_USER=${BASH_REMATCH[3]:-postgres}
  PG_PASSWORD=${BASH_REMATCH[5]}
  PG_HOST=${BASH_REMATCH[6]}
  PG_PORT=${BASH_REMATCH[8]:-5432}
}

# psql against the server's maintenance database; never prompts, gives up after 3 s.
pg_admin() {
  PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 psql -X -q -w -v ON_ERROR_STOP=1 \
    -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -tA "$@"
}

require_postgres() {
  require_psql
  parse_database_url
  local error
  error=$(pg_admin -c 'SELECT 1' 2>&1 >/dev/null) ||
    die "PostgreSQL does not answer at $PG_HOST:$PG_PORT as $PG_USER (DATABASE_URL=$DATABASE_URL): ${error:-no answer}
  Start it (e.g. 'pg_ctlcluster 15 main start') or point DATABASE_URL at a running server."
}

ensure_database() {
  local name=$1
  if [[ -z $(pg_admin -c "SELECT 1 FROM pg_database WHERE datname = '$name'") ]]; then
    pg_admin -c "CREATE DATABASE \"$name\"" >/dev/null
    say "created database $name"
  fi
}

# ---------------------------------------------------------------------------------------------
# Pinned distributions from Maven Central, fetched once into CACHE_DIR

# The stamp holds the pom's checksum: an edited pom (a new pin) means a new fetch.
fetch_distributions() {
  local stamp=$CACHE_DIR/.complete want
  want=$(sha256sum "$DEPLOY_DIR/pom.xml" | cut -d ' ' -f 1)
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then return 0; fi

  command -v mvn >/dev/null ||
    die "mvn not found: install Maven to fetch Kafka and Apicurio from Maven Central, e.g. 'apt-get install maven'"
  mkdir -p "$(dirname "$CACHE_DIR")"
  # Two `make` runs at once (a second shell, a fresh clone) must not fetch into the same folder together.
  local lock
  exec {lock}>"$CACHE_DIR.lock"
  flock "$lock"
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
    exec {lock}>&-
    return 0
  fi
  say "fetching Kafka $KAFKA_VERSION, MirrorMaker 2 and Apicurio Registry $APICURIO_VERSION from Maven Central into $CACHE_DIR"
  rm -rf "$CACHE_DIR"
  mkdir -p "$CACHE_DIR"
  # Maven's output only matters when it fails (Debian's Maven 3.8 prints stray colour codes otherwise).
  local output=$CACHE_DIR.fetch.log
  if ! mvn -q -B -f "$DEPLOY_DIR/pom.xml" -Dtidings.fetch.dir="$CACHE_DIR" \
    dependency:copy-dependencies@kafka dependency:unpack@apicurio >"$output" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$output" >&2
    die "Maven could not fetch the distributions (its output is above and in $output)"
  fi
  [[ -f $APICURIO_JAR ]] || die "the Apicurio archive did not unpack into $APICURIO_JAR"
  printf '%s\n' "$want" >"$stamp"
  exec {lock}>&-
}

# A Kafka tool as a short-lived JVM, quiet unless it fails. C1 only (TieredStopAtLevel=1): for a
# run of a second or two, compiling less starts faster.
kafka_tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$DEPLOY_DIR/log4j2.properties" -Dtidings.log.level=WARN \
    -cp "$KAFKA_LIBS/*" "$@"
}

# ---------------------------------------------------------------------------------------------
# Background processes: one pid file and one log file per part

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# Prints the pid of a running part. The command line must carry the part's marker, so a recycled
# pid (after a reboot, say) is not mistaken for ours; a stale pid file is removed.
part_pid() {
  local file pid cmdline=''
  file=$(pid_file "$1")
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)
  if [[ $cmdline == *"-Dtidings.part=$1 "* ]]; then
    printf '%s' "$pid"
    return 0
  fi
  rm -f "$file"
  return 1
}

# Starts a part's command in the background, detached from this terminal (Ctrl-C in the shell that
# ran `make up` must not take the stack down), with its output appended to a fresh log file.
# The previous run's log is kept as <part>.log.1.
launch() {
  local part=$1 log
  shift
  log=$(log_file "$part")
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  [[ -f $log ]] && mv -f "$log" "$log.1"
  {
    printf '# %s: started %s\n# %s\n' "$part" "$(date -Is)" "$*"
  } >"$log"
  # setsid (no fork: this background child is not a group leader) keeps $! equal to the JVM's pid.
  setsid nohup "$@" >>"$log" 2>&1 </dev/null &
  local pid=$! waited
  printf '%s\n' "$pid" >"$(pid_file "$part")"
  # Until the child has exec'd, /proc shows this shell's command line, and part_pid would take a part
  # that is still starting for one that died (seen on a loaded machine: "mirror exited before
  # starting"). Wait for the exec, at most 5 s.
  for ((waited = 0; waited < 100; waited++)); do
    kill -0 "$pid" 2>/dev/null || break
    [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true) == *"-Dtidings.part=$part "* ]] && break
    sleep 0.05
  done
}

# SIGTERM, then SIGKILL once STOP_TIMEOUT has passed.
terminate() {
  local part=$1 pid waited=0
  pid=$(part_pid "$part") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= STOP_TIMEOUT * 10)); then
      say "$part: still running ${STOP_TIMEOUT}s after SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$(pid_file "$part")"
}

# Succeeds when something accepts TCP connections on 127.0.0.1:<port>.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Polls `check` (a command) until it succeeds. Fails at once if the part's process died, and after
# START_TIMEOUT seconds otherwise, pointing at the log either way.
wait_until_ready() {
  local part=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + START_TIMEOUT))
  until "$@"; do
    if ! part_pid "$part" >/dev/null; then
      die "$part exited before $what; last lines of $(log_file "$part"):
$(tail -n 20 "$(log_file "$part")" 2>/dev/null)"
    fi
    if ((SECONDS >= deadline)); then
      die "$part did not get to $what within ${START_TIMEOUT}s (it is still running; see $(log_file "$part"))"
    fi
    sleep 0.5
  done
}
