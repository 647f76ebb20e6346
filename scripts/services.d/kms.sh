# AWS KMS API on 127.0.0.1: moto_server (PyPI `moto[server]`, pinned), for the
# `aws-kms` provider tests. Start creates three symmetric keys through the KMS
# API itself (the KEK, a second KEK, and one that is then disabled).
#
# Exports: LOCKBOX_TEST_KMS_ENDPOINT, LOCKBOX_TEST_KMS_REGION,
# LOCKBOX_TEST_KMS_ACCESS_KEY_ID, LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY,
# LOCKBOX_TEST_KMS_KEY_ARN, LOCKBOX_TEST_KMS_OTHER_KEY_ARN,
# LOCKBOX_TEST_KMS_DISABLED_KEY_ARN.

LOCKBOX_MOTO_VERSION="${LOCKBOX_MOTO_VERSION:-5.2.5}"

svc_kms_install() {
  svc_pip "moto[server]==$LOCKBOX_MOTO_VERSION"
}

svc_kms_start() {
  local venv port pid region=us-east-1 out
  venv="$(svc_venv)"
  port="$(svc_free_port)"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOCKBOX_SERVICES_DIR/kms.log" 2>&1 &
  pid=$!
  svc_pidfile kms "$pid"
  svc_wait_port "$port" 60 "$pid"
  # moto accepts any credentials; these are fixed test values, not secrets.
  out="$(
    AWS_ACCESS_KEY_ID=lockbox-test AWS_SECRET_ACCESS_KEY=lockbox-test-secret \
      "$venv/bin/python" - "http://127.0.0.1:$port" "$region" <<'PY'
import sys, boto3
kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name=sys.argv[2])
keys = [kms.create_key(Description=d)["KeyMetadata"] for d in ("lockbox kek", "lockbox other kek", "lockbox disabled kek")]
kms.disable_key(KeyId=keys[2]["KeyId"])
kms.create_alias(AliasName="alias/lockbox-test", TargetKeyId=keys[0]["KeyId"])
print(" ".join(k["Arn"] for k in keys))
PY
  )" || svc_die "creating the KMS test keys failed"
  read -r kek other disabled <<<"$out"
  svc_export LOCKBOX_TEST_KMS_ENDPOINT "http://127.0.0.1:$port"
  svc_export LOCKBOX_TEST_KMS_REGION "$region"
  svc_export LOCKBOX_TEST_KMS_ACCESS_KEY_ID lockbox-test
  svc_export LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY lockbox-test-secret
  svc_export LOCKBOX_TEST_KMS_KEY_ARN "$kek"
  svc_export LOCKBOX_TEST_KMS_OTHER_KEY_ARN "$other"
  svc_export LOCKBOX_TEST_KMS_DISABLED_KEY_ARN "$disabled"
  svc_log "kms: moto_server on 127.0.0.1:$port"
}
