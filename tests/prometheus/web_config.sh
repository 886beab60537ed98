#!/bin/bash
# prometheus.web_config: a real Prometheus scrapes tcpmsgd over HTTPS with
# basic auth and a client certificate (--web-config with
# RequireAndVerifyClientCert), trusting a CA made here with openssl. The
# target with the right password and certificate is up with tcpmsg metrics;
# a wrong password, and a client without a certificate, are down, and
# tcpmsgd counts both refusals.
# Usage: web_config.sh TCPMSGD BCRYPT_HASH
. "$(dirname "$0")/lib.sh"
TCPMSGD=$1 BCRYPT_HASH=$2
PROMETHEUS=$(need_program prometheus) || exit $?
OPENSSL=$(need_program openssl) || exit $?
watchdog 100

# A CA, a server certificate for 127.0.0.1 and a client certificate.
pki=$TMP_DIR/pki
mkdir -p "$pki"
ossl() { "$OPENSSL" "$@" >>"$TMP_DIR/openssl.log" 2>&1 || fail "openssl $1 failed"; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=tcpmsg test CA"
for who in server client; do
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$pki/$who.key" -out "$pki/$who.csr" -subj "/CN=$who"
done
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$pki/server.ext"
printf 'extendedKeyUsage=clientAuth\n' >"$pki/client.ext"
for who in server client; do
    ossl x509 -req -in "$pki/$who.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 2 -extfile "$pki/$who.ext" -out "$pki/$who.crt"
done

password="scrape-$RANDOM-$RANDOM"
hash=$("$BCRYPT_HASH" "$password") || fail "bcrypt_hash failed"
# Paths relative to the file's directory.
cat >"$pki/web.yml" <<CONF
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
basic_auth_users:
  prometheus: '$hash'
CONF

start_tcpmsgd "$TCPMSGD" --web-config "$pki/web.yml"
grep -q 'http endpoint listening.* tls=on auth=on client_auth=RequireAndVerifyClientCert' \
    "$TMP_DIR/tcpmsgd.log" || fail "the startup line does not say tls=on auth=on"
log "tcpmsgd port=$PORT https_port=$HTTP_PORT"

printf '%s' "$password" >"$TMP_DIR/password"
prometheus_config "$TMP_DIR/prometheus.yml" "" "$(cat <<JOBS
  - job_name: tcpmsgd
    scheme: https
    basic_auth: { username: prometheus, password_file: $TMP_DIR/password }
    tls_config: { ca_file: $pki/ca.crt, cert_file: $pki/client.crt, key_file: $pki/client.key }
    static_configs: [ { targets: ["127.0.0.1:$HTTP_PORT"] } ]
  - job_name: wrong_password
    scheme: https
    basic_auth: { username: prometheus, password: not-the-password }
    tls_config: { ca_file: $pki/ca.crt, cert_file: $pki/client.crt, key_file: $pki/client.key }
    static_configs: [ { targets: ["127.0.0.1:$HTTP_PORT"] } ]
  - job_name: no_client_cert
    scheme: https
    basic_auth: { username: prometheus, password_file: $TMP_DIR/password }
    tls_config: { ca_file: $pki/ca.crt }
    static_configs: [ { targets: ["127.0.0.1:$HTTP_PORT"] } ]
JOBS
)"

start_prometheus "$TMP_DIR/prometheus.yml"

wait_value 'up{job="tcpmsgd"}' 1 60
wait_value 'tcpmsg_connections_max{job="tcpmsgd"}' 10000 10
wait_value 'up{job="wrong_password"}' 0 30
wait_value 'up{job="no_client_cert"}' 0 30
# tcpmsgd's own account of the refusals, as scraped: some wrong passwords,
# some failed handshakes, and nothing unauthenticated that got through.
wait_value 'tcpmsg_http_auth_failures_total{job="tcpmsgd",reason="denied"} > bool 0' 1 30
wait_value 'tcpmsg_http_auth_failures_total{job="tcpmsgd",reason="tls_handshake"} > bool 0' 1 30
wait_value 'tcpmsg_http_auth_failures_total{job="tcpmsgd",reason="missing"}' 0 10
log "up over HTTPS with basic auth and a client certificate; a wrong password and no certificate are refused"
stop_tcpmsgd
log "ok"
