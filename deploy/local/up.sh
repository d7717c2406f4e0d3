#!/usr/bin/env bash
# `make up`: starts every part of the local stack that is not running yet (Kafka eqiad and codfw,
# MirrorMaker 2, Apicurio Registry), creates the application database, and prints where each part
# listens. The first run fetches the pinned distributions from Maven Central (see pom.xml).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Fail before anything starts when a prerequisite is missing.
require_java
require_postgres
fetch_distributions
ensure_database "$APP_DATABASE"

bash "$DEPLOY_DIR/ctl.sh" start all
say
bash "$DEPLOY_DIR/ctl.sh" status all
say "application database: postgres://$PG_USER@$PG_HOST:$PG_PORT/$APP_DATABASE"
