#!/usr/bin/env bash
# End-to-end: real relying parties in a real browser against telegram-oidc on loopback.
#
#   Apache httpd + mod_auth_openidc   protects a page (Debian packages)
#   openid-client 6 + headless Chromium  (npm; Chromium from Debian, never downloaded)
#   authlib                            walks the same pages as a browser without JavaScript (PyPI)
#
# The provider is `telegram-oidc dev`: its Telegram emulator signs login data the way Telegram
# signs Login Widget data and hands it to the real callback, so every page after it is the
# production path. Apps are registered with the CLI. Each scenario prints PASS/FAIL lines; the
# run ends with `e2e: N passed, M failed` and exits non-zero when anything failed. Screenshots go
# to tests/e2e/out/.
set -uo pipefail

E2E_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$E2E_DIR/../.." && pwd)"
OUT="$E2E_DIR/out"
STARTED=$SECONDS

say() { printf '[e2e %3ds] %s\n' "$((SECONDS - STARTED))" "$*"; }
die() {
  say "setup failed: $*"
  echo "e2e: 0 passed, 1 failed"
  exit 1
}

# --- what the run needs from the registries -------------------------------------------------
missing=()
command -v apache2 >/dev/null 2>&1 || missing+=(apache2)
[ -e /usr/lib/apache2/modules/mod_auth_openidc.so ] || missing+=(libapache2-mod-auth-openidc)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# Cyrillic glyphs for the Russian screenshots.
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
command -v node >/dev/null 2>&1 || die "node (20 or newer) is required"

say "npm ci (playwright-core, openid-client)"
# playwright-core never downloads a browser; the variable keeps any future dependency from trying.
(cd "$E2E_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
  || die "npm ci failed"
if ! python3 -c 'import authlib, requests' 2>/dev/null; then
  say "pip install authlib"
  python3 -m pip install --quiet -r "$E2E_DIR/requirements.txt" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages -r "$E2E_DIR/requirements.txt" \
    || die "pip install failed"
fi

say "cargo build"
(cd "$ROOT" && cargo build --locked --quiet --bin telegram-oidc) || die "cargo build failed"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/telegram-oidc"

# --- a private world under one temporary directory ------------------------------------------
WORK="$(mktemp -d /tmp/telegram-oidc-e2e.XXXXXX)"
# Apache's children run as www-data and read the page and config from here.
chmod 755 "$WORK"
rm -rf "$OUT"
mkdir -p "$OUT" "$WORK/apache/htdocs/protected" "$WORK/tmp"
SERVER_PID=""
APACHE_PID=""
cleanup() {
  [ -n "$APACHE_PID" ] && kill "$APACHE_PID" 2>/dev/null
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# Each app gets an address of its own in 127.0.0.0/8: a different host is a different site
# with its own cookies, as the provider and its apps are in production.
APACHE_HOST=127.0.0.2
NODE_HOST=127.0.0.3
PY_HOST=127.0.0.4
free_port() {
  python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}
APACHE_PORT="$(free_port $APACHE_HOST)"
NODE_PORT="$(free_port $NODE_HOST)"
PY_PORT="$(free_port $PY_HOST)"

# --- the provider ----------------------------------------------------------------------------
say "starting telegram-oidc dev"
RUST_LOG="info,sqlx=warn,tower_http=warn" "$BIN" dev --listen 127.0.0.1:0 --data "$WORK/data" --admin 777000444 \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ISSUER=""
for _ in $(seq 1 100); do
  ISSUER="$(sed -n 's/^ *issuer: *\(http[^ ]*\)$/\1/p' "$WORK/server.log" | head -n 1)"
  if [ -n "$ISSUER" ] && curl -fsS -o /dev/null "$ISSUER/healthz" 2>/dev/null; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.2
done
curl -fsS -o /dev/null "$ISSUER/healthz" 2>/dev/null || {
  cat "$WORK/server.log"
  die "telegram-oidc did not start"
}
say "issuer $ISSUER"

# The CLI works on the dev server's own database and keys.
CLI_CONFIG="$WORK/cli.toml"
cat >"$CLI_CONFIG" <<EOF
database_url = "sqlite://$WORK/data/telegram-oidc.db"
keys_dir = "$WORK/data/keys"
EOF
cli() { "$BIN" --config "$CLI_CONFIG" "$@"; }

APACHE_URL="http://$APACHE_HOST:$APACHE_PORT"
NODE_URL="http://$NODE_HOST:$NODE_PORT"
PY_URL="http://$PY_HOST:$PY_PORT"
mkdir -p "$WORK/clients"
cli client add --json --name "Apache mod_auth_openidc" \
  --redirect-uri "$APACHE_URL/protected/redirect_uri" \
  --post-logout-redirect-uri "$APACHE_URL/loggedout.html" \
  --backchannel-logout-uri "$APACHE_URL/protected/redirect_uri?logout=backchannel" \
  --scopes openid,profile,telegram >"$WORK/clients/apache.json" || die "client add (Apache) failed"
cli client add --json --name "openid-client app" --device-flow \
  --redirect-uri "$NODE_URL/cb" --post-logout-redirect-uri "$NODE_URL/loggedout" \
  >"$WORK/clients/node.json" || die "client add (openid-client) failed"
cli client add --json --name "authlib app" --redirect-uri "$PY_URL/callback" \
  >"$WORK/clients/python.json" || die "client add (authlib) failed"
cli client add --json --name "authlib service" --service-account --scopes api:read \
  >"$WORK/clients/service.json" || die "client add (service account) failed"
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
APACHE_CLIENT_ID="$(json_field "$WORK/clients/apache.json" client_id)"
APACHE_CLIENT_SECRET="$(json_field "$WORK/clients/apache.json" client_secret)"

# --- Apache httpd with mod_auth_openidc, a private instance on a loopback port ---------------
MODULES=/usr/lib/apache2/modules
cat >"$WORK/apache/htdocs/protected/index.shtml" <<'EOF'
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Protected page</title></head>
<body><h1>Protected page</h1>
<p id="user">Hello, <!--#echo var="OIDC_CLAIM_name" --> (<!--#echo var="REMOTE_USER" -->)</p>
</body></html>
EOF
cat >"$WORK/apache/htdocs/loggedout.html" <<'EOF'
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head>
<body><h1>Signed out of the Apache app</h1></body></html>
EOF
cat >"$WORK/apache/httpd.conf" <<EOF
ServerRoot "$WORK/apache"
DefaultRuntimeDir "$WORK/apache"
PidFile "$WORK/apache/httpd.pid"
Listen $APACHE_HOST:$APACHE_PORT
ServerName $APACHE_HOST:$APACHE_PORT
User www-data
Group www-data
ErrorLog "$WORK/apache/error_log"
# debug: the scenarios read which key mod_auth_openidc verified an ID token with.
LogLevel warn auth_openidc:debug
LoadModule mpm_event_module $MODULES/mod_mpm_event.so
LoadModule authz_core_module $MODULES/mod_authz_core.so
LoadModule authz_user_module $MODULES/mod_authz_user.so
LoadModule authn_core_module $MODULES/mod_authn_core.so
LoadModule dir_module $MODULES/mod_dir.so
LoadModule include_module $MODULES/mod_include.so
LoadModule auth_openidc_module $MODULES/mod_auth_openidc.so
LogFormat "%h \"%r\" %>s" short
CustomLog "$WORK/apache/access_log" short
DocumentRoot "$WORK/apache/htdocs"
DirectoryIndex index.shtml index.html

OIDCProviderMetadataURL $ISSUER/.well-known/openid-configuration
OIDCClientID $APACHE_CLIENT_ID
OIDCClientSecret $APACHE_CLIENT_SECRET
OIDCRedirectURI $APACHE_URL/protected/redirect_uri
OIDCCryptoPassphrase $(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
OIDCScope "openid profile telegram"
OIDCRemoteUserClaim sub
OIDCInfoHook iat access_token id_token userinfo session
OIDCDefaultLoggedOutURL $APACHE_URL/loggedout.html

<Location /protected>
  AuthType openid-connect
  Require valid-user
  Options +Includes
  SetOutputFilter INCLUDES
</Location>
EOF
chmod -R a+rX "$WORK/apache"
apache2 -f "$WORK/apache/httpd.conf" -t >"$WORK/apache/configtest.log" 2>&1 || {
  cat "$WORK/apache/configtest.log"
  die "Apache rejected its configuration"
}
say "starting Apache on $APACHE_URL"
apache2 -f "$WORK/apache/httpd.conf" -DFOREGROUND >>"$WORK/apache/error_log" 2>&1 &
APACHE_PID=$!
for _ in $(seq 1 50); do
  curl -s -o /dev/null "$APACHE_URL/loggedout.html" && break
  sleep 0.2
done
curl -fsS -o /dev/null "$APACHE_URL/loggedout.html" || {
  cat "$WORK/apache/error_log"
  die "Apache did not start"
}

# --- the scenarios ----------------------------------------------------------------------------
export ISSUER APACHE_URL NODE_URL PY_URL OUT
export APACHE_ERROR_LOG="$WORK/apache/error_log"
export E2E_CLIENTS="$WORK/clients"
export E2E_BIN="$BIN" E2E_CLI_CONFIG="$CLI_CONFIG"
export TMPDIR="$WORK/tmp"
RESULTS="$WORK/results.txt"
: >"$RESULTS"

run_scenario() {
  local name=$1 limit=$2
  shift 2
  say "scenario $name"
  local own="$WORK/$name.out"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$own"
  local status=${PIPESTATUS[0]}
  cat "$own" >>"$RESULTS"
  if [ "$status" -ne 0 ] && ! grep -q '^FAIL ' "$own"; then
    echo "FAIL $name: the scenario exited with status $status" | tee -a "$RESULTS"
  fi
}
# E2E_SCENARIOS picks some of them while working on one.
for scenario in ${E2E_SCENARIOS:-browser authlib}; do
  case "$scenario" in
    browser) run_scenario browser 420 node "$E2E_DIR/browser.mjs" ;;
    authlib) run_scenario authlib 180 python3 "$E2E_DIR/authlib_rp.py" ;;
    *) echo "FAIL $scenario: no such scenario" | tee -a "$RESULTS" ;;
  esac
done

passed=$(grep -c '^PASS ' "$RESULTS")
failed=$(grep -c '^FAIL ' "$RESULTS")
if [ "$failed" -gt 0 ] || [ "$passed" -eq 0 ]; then
  echo
  echo "---- Apache mod_auth_openidc: error_log (all but debug lines) ----"
  grep -v ':debug\]' "$WORK/apache/error_log" | tail -n 60
  echo "---- Apache access_log (last lines) ----"
  tail -n 30 "$WORK/apache/access_log"
  echo "---- telegram-oidc log (warnings, errors, last lines) ----"
  grep -E ' (WARN|ERROR) ' "$WORK/server.log" | tail -n 40
  tail -n 30 "$WORK/server.log"
fi
say "screenshots in $OUT ($(find "$OUT" -name '*.png' | wc -l) files)"
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
