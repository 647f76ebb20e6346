# AWS KMS API on 127.0.0.1: moto_server (PyPI `moto[server]`, pinned), for the
# `aws-kms` provider tests, over HTTPS with a throw-away CA made here with
# openssl (so the tests take the same rustls path as real KMS). Start creates
# three symmetric keys through the KMS API itself (the KEK, a second KEK, and
# one that is then disabled). The same server also serves the S3 API, for the
# rotation engine's object store (`stores/object-store`): start creates the
# bucket `lockbox-test` there.
#
# Exports: LOCKBOX_TEST_KMS_ENDPOINT (https://127.0.0.1:PORT),
# LOCKBOX_TEST_KMS_CA_CERT (PEM file of the CA), LOCKBOX_TEST_KMS_REGION,
# LOCKBOX_TEST_KMS_ACCESS_KEY_ID, LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY,
# LOCKBOX_TEST_KMS_KEY_ARN, LOCKBOX_TEST_KMS_OTHER_KEY_ARN,
# LOCKBOX_TEST_KMS_DISABLED_KEY_ARN; LOCKBOX_TEST_S3_ENDPOINT (the same
# server), LOCKBOX_TEST_S3_BUCKET, LOCKBOX_TEST_S3_REGION,
# LOCKBOX_TEST_S3_ACCESS_KEY_ID, LOCKBOX_TEST_S3_SECRET_ACCESS_KEY,
# LOCKBOX_TEST_S3_CA_CERT.

LOCKBOX_MOTO_VERSION="${LOCKBOX_MOTO_VERSION:-5.2.5}"

svc_kms_install() {
  svc_apt "openssl=*"
  svc_pip "moto[server]==$LOCKBOX_MOTO_VERSION"
}

# svc_kms_certs DIR: a CA and a server certificate for 127.0.0.1 (P-256, 2 days).
svc_kms_certs() {
  local dir="$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 700 "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=lockbox-test-ca -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n' >"$dir/ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/ext" -out "$dir/server.pem" 2>/dev/null
  [ -s "$dir/server.pem" ] || svc_die "openssl could not make the KMS test certificates"
}

svc_kms_start() {
  local venv port pid region=us-east-1 out certs="$LOCKBOX_SERVICES_DIR/kms-tls"
  venv="$(svc_venv)"
  port="$(svc_free_port)"
  svc_kms_certs "$certs"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" -c "$certs/server.pem" -k "$certs/server.key" \
    >"$LOCKBOX_SERVICES_DIR/kms.log" 2>&1 &
  pid=$!
  svc_pidfile kms "$pid"
  svc_wait_port "$port" 60 "$pid"
  # moto accepts any credentials; these are fixed test values, not secrets.
  out="$(
    AWS_ACCESS_KEY_ID=lockbox-test AWS_SECRET_ACCESS_KEY=lockbox-test-secret AWS_CA_BUNDLE="$certs/ca.pem" \
      "$venv/bin/python" - "https://127.0.0.1:$port" "$region" <<'PY'
import sys, boto3
kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name=sys.argv[2])
keys = [kms.create_key(Description=d)["KeyMetadata"] for d in ("lockbox kek", "lockbox other kek", "lockbox disabled kek")]
kms.disable_key(KeyId=keys[2]["KeyId"])
kms.create_alias(AliasName="alias/lockbox-test", TargetKeyId=keys[0]["KeyId"])
boto3.client("s3", endpoint_url=sys.argv[1], region_name=sys.argv[2]).create_bucket(Bucket="lockbox-test")
print(" ".join(k["Arn"] for k in keys))
PY
  )" || svc_die "creating the KMS test keys failed"
  read -r kek other disabled <<<"$out"
  svc_export LOCKBOX_TEST_KMS_ENDPOINT "https://127.0.0.1:$port"
  svc_export LOCKBOX_TEST_KMS_CA_CERT "$certs/ca.pem"
  svc_export LOCKBOX_TEST_KMS_REGION "$region"
  svc_export LOCKBOX_TEST_KMS_ACCESS_KEY_ID lockbox-test
  svc_export LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY lockbox-test-secret
  svc_export LOCKBOX_TEST_KMS_KEY_ARN "$kek"
  svc_export LOCKBOX_TEST_KMS_OTHER_KEY_ARN "$other"
  svc_export LOCKBOX_TEST_KMS_DISABLED_KEY_ARN "$disabled"
  svc_export LOCKBOX_TEST_S3_ENDPOINT "https://127.0.0.1:$port"
  svc_export LOCKBOX_TEST_S3_BUCKET lockbox-test
  svc_export LOCKBOX_TEST_S3_REGION "$region"
  svc_export LOCKBOX_TEST_S3_ACCESS_KEY_ID lockbox-test
  svc_export LOCKBOX_TEST_S3_SECRET_ACCESS_KEY lockbox-test-secret
  svc_export LOCKBOX_TEST_S3_CA_CERT "$certs/ca.pem"
  svc_log "kms: moto_server on https://127.0.0.1:$port (KMS, and S3 bucket lockbox-test)"
}

svc_kms_stop() {
  rm -rf "$LOCKBOX_SERVICES_DIR/kms-tls"
}
