#!/usr/bin/env bash
# Install (if missing) and start the services the serving tests need: a PostgreSQL server and Debian's
# chromium for the Playwright browser test. Idempotent; runs as root on Debian 12.
#
# Usage from .ci/run:   eval "$(bash .ci/services.sh)"
# stdout carries only `export NAME=value` lines; progress goes to stderr.
set -euo pipefail
log() { echo "services: $*" >&2; }
export DEBIAN_FRONTEND=noninteractive

PG_ROLE=risk
PG_PASSWORD=risk
PG_DB=risk_test

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
# CJK glyphs for readable screenshots of the (Chinese-first) page; the tests do not depend on them.
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || missing+=(fonts-wqy-zenhei)
# LibreOffice renders the printed team workbook to PDF and poppler reads it back (tests/test_workbook_print.py).
command -v soffice >/dev/null || missing+=(libreoffice-calc-nogui)
command -v pdftotext >/dev/null || missing+=(poppler-utils)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql-common)
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
cluster_line() { pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"'; }
if [ -z "$(cluster_line)" ]; then
  log "creating PostgreSQL $version cluster 'main'"
  pg_createcluster "$version" main >&2
fi
port=$(cluster_line | awk '{print $3}')
if [ "$(cluster_line | awk '{print $4}')" != "online" ]; then
  log "starting PostgreSQL $version main on port $port"
  pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 1
done
pg_isready -q -h 127.0.0.1 -p "$port" || { log "PostgreSQL did not become ready"; exit 1; }

as_postgres() { runuser -u postgres -- psql -X -q -p "$port" -v ON_ERROR_STOP=1 "$@"; }
if [ "$(as_postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'")" != "1" ]; then
  as_postgres -c "CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD'" >&2
fi
if [ "$(as_postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
  as_postgres -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE" >&2
fi
log "PostgreSQL ready on 127.0.0.1:$port, database $PG_DB; chromium $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"

echo "export RISK_TEST_PG_URL=postgresql+psycopg://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
echo "export RISK_REQUIRE_POSTGRES=1"
echo "export RISK_BROWSER_PATH=/usr/bin/chromium"
echo "export RISK_REQUIRE_BROWSER=1"
