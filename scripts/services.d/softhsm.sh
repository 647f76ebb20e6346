# SoftHSM2: a PKCS#11 token in software, for the `pkcs11` provider tests.
# It has no server process: "start" creates a fresh token in its own
# directory, with its own SOFTHSM2_CONF, and generates the keys the tests use
# with pkcs11-tool (OpenSC). "stop" deletes the token.
#
# Exports: LOCKBOX_TEST_PKCS11_MODULE, LOCKBOX_TEST_PKCS11_PIN,
# LOCKBOX_TEST_PKCS11_TOKEN_LABEL, LOCKBOX_TEST_PKCS11_KEY_LABEL (the KEK),
# LOCKBOX_TEST_PKCS11_KEY_ID (its CKA_ID, hex), LOCKBOX_TEST_PKCS11_OTHER_KEY_LABEL
# (a second KEK), LOCKBOX_TEST_PKCS11_EXTRACTABLE_KEY_LABEL,
# LOCKBOX_TEST_PKCS11_NOT_SENSITIVE_KEY_LABEL, LOCKBOX_TEST_PKCS11_AES128_KEY_LABEL,
# LOCKBOX_TEST_PKCS11_PUBLIC_KEY_LABEL, LOCKBOX_TEST_PKCS11_DUPLICATE_KEY_LABEL
# (keys the provider must refuse), SOFTHSM2_CONF.

# Pinned Debian (bookworm) versions; the glob admits the distribution's
# security rebuilds of the same upstream release.
LOCKBOX_SOFTHSM2_VERSION="${LOCKBOX_SOFTHSM2_VERSION:-2.6.1-*}"
LOCKBOX_OPENSC_VERSION="${LOCKBOX_OPENSC_VERSION:-0.23.0-*}"

svc_softhsm_install() {
  svc_apt "softhsm2=$LOCKBOX_SOFTHSM2_VERSION" "opensc=$LOCKBOX_OPENSC_VERSION"
}

svc_softhsm_module() {
  local m
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
    if [ -f "$m" ]; then
      printf '%s\n' "$m"
      return 0
    fi
  done
  svc_die "libsofthsm2.so not found"
}

svc_softhsm_start() {
  local dir="$LOCKBOX_SERVICES_DIR/softhsm" module pin so_pin token="lockbox-test"
  rm -rf "$dir"
  mkdir -p "$dir/tokens"
  chmod 700 "$dir"
  cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
  export SOFTHSM2_CONF="$dir/softhsm2.conf"
  module="$(svc_softhsm_module)"
  # Fresh random PINs for this throw-away token.
  pin="$(od -An -N8 -tu8 /dev/urandom | tr -d ' \n')"
  so_pin="$(od -An -N8 -tu8 /dev/urandom | tr -d ' \n')"
  softhsm2-util --init-token --free --label "$token" --pin "$pin" --so-pin "$so_pin" >/dev/null

  # keygen LABEL ID KEYTYPE [pkcs11-tool flags...]
  keygen() {
    local label="$1" id="$2" type="$3"
    shift 3
    pkcs11-tool --module "$module" --token-label "$token" --login --pin "$pin" \
      --keygen --key-type "$type" --label "$label" --id "$id" "$@" >/dev/null 2>"$dir/keygen.log" ||
      { cat "$dir/keygen.log" >&2; svc_die "pkcs11-tool --keygen $label failed"; }
  }
  # The KEKs: private (usable only after login), sensitive, never extractable
  # (pkcs11-tool's default), AES-256.
  keygen lockbox-kek 6c6b01 AES:32 --private --sensitive
  keygen lockbox-kek-other 6c6b02 AES:32 --private --sensitive
  # Keys the provider must refuse.
  keygen lockbox-kek-extractable 6c6b03 AES:32 --private --sensitive --extractable
  keygen lockbox-kek-not-sensitive 6c6b04 AES:32 --private
  keygen lockbox-kek-aes128 6c6b05 AES:16 --private --sensitive
  keygen lockbox-kek-public 6c6b06 AES:32 --sensitive
  # Two keys with one label: ambiguous, refused.
  keygen lockbox-kek-twice 6c6b07 AES:32 --private --sensitive
  keygen lockbox-kek-twice 6c6b08 AES:32 --private --sensitive

  svc_export SOFTHSM2_CONF "$SOFTHSM2_CONF"
  svc_export LOCKBOX_TEST_PKCS11_MODULE "$module"
  svc_export LOCKBOX_TEST_PKCS11_PIN "$pin"
  svc_export LOCKBOX_TEST_PKCS11_TOKEN_LABEL "$token"
  svc_export LOCKBOX_TEST_PKCS11_KEY_LABEL lockbox-kek
  svc_export LOCKBOX_TEST_PKCS11_KEY_ID 6c6b01
  svc_export LOCKBOX_TEST_PKCS11_OTHER_KEY_LABEL lockbox-kek-other
  svc_export LOCKBOX_TEST_PKCS11_EXTRACTABLE_KEY_LABEL lockbox-kek-extractable
  svc_export LOCKBOX_TEST_PKCS11_NOT_SENSITIVE_KEY_LABEL lockbox-kek-not-sensitive
  svc_export LOCKBOX_TEST_PKCS11_AES128_KEY_LABEL lockbox-kek-aes128
  svc_export LOCKBOX_TEST_PKCS11_PUBLIC_KEY_LABEL lockbox-kek-public
  svc_export LOCKBOX_TEST_PKCS11_DUPLICATE_KEY_LABEL lockbox-kek-twice
  svc_log "softhsm: token \"$token\" in $dir"
}

svc_softhsm_stop() {
  rm -rf "$LOCKBOX_SERVICES_DIR/softhsm"
}
