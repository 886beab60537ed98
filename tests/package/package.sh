#!/bin/bash
# The Debian package: `cpack -G DEB` makes tcpmsg_<version>_<arch>.deb with
# the control fields Debian expects (Depends from dpkg-shlibdeps), the
# programs stripped, the man pages and changelog gzipped, a copyright file,
# every file under /etc a conffile; lintian finds no error in it (its
# warnings are printed); and the programs extracted from it with dpkg-deb -x
# into a scratch root run from there: the client gets its reply, and the
# status page comes from the extracted usr/share/tcpmsg/web.
# usage: package.sh BUILD_DIR CPACK SOURCE_DIR VERSION
# shellcheck source=tests/prometheus/lib.sh
. "$(dirname "$0")/../prometheus/lib.sh"
[ $# -eq 4 ] || { echo "usage: $0 BUILD_DIR CPACK SOURCE_DIR VERSION" >&2; exit 2; }
BUILD_DIR=$1 CPACK=$2 SOURCE_DIR=$3 VERSION=$4
watchdog 280
for p in dpkg-deb dpkg-shlibdeps lintian readelf; do need_program "$p" >/dev/null; done
TMP=$(realpath "$TMP_DIR")

arch=$(dpkg --print-architecture) || fail "dpkg --print-architecture"
"$CPACK" --config "$BUILD_DIR/CPackConfig.cmake" -G DEB -B "$TMP/out" >"$TMP_DIR/cpack.log" 2>&1 ||
    fail "cpack exits $?"
deb=$TMP/out/tcpmsg_${VERSION}_$arch.deb
[ -f "$deb" ] || fail "no $deb; cpack made: $(ls "$TMP/out")"
log "$(basename "$deb"): $(stat -c %s "$deb") bytes"

# Control fields.
dpkg-deb -I "$deb" >&2 || fail "dpkg-deb -I exits $?"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = tcpmsg ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$VERSION" ] || fail "Version: $(field Version), want $VERSION"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture)"
[ "$(field Section)" = net ] || fail "Section: $(field Section)"
[[ $(field Maintainer) =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] || fail "Maintainer: '$(field Maintainer)'"
[[ $(field Homepage) == https://* ]] || fail "Homepage: '$(field Homepage)'"
[ "$(field Description | wc -l)" -ge 3 ] || fail "no extended Description"
depends=$(field Depends)
for lib in libc6 libjansson4 libmicrohttpd12 libyaml-0-2 libcrypt1 libgnutls30; do
    [[ ", $depends," == *", $lib "* || ", $depends," == *", $lib,"* ]] ||
        fail "Depends lacks $lib: $depends"
done
if readelf -d "$BUILD_DIR/bin/tcpmsgd" | grep -q 'liburing'; then
    [[ $depends == *liburing* ]] || fail "tcpmsgd links liburing, Depends lacks it: $depends"
fi
log "Depends: $depends"

# Contents: owned by root, under /usr (and /etc, /lib for unit files), the
# expected files there.
dpkg-deb -c "$deb" >"$TMP_DIR/contents" || fail "dpkg-deb -c exits $?"
awk '$2 != "root/root" { print; bad = 1 } END { exit bad }' "$TMP_DIR/contents" ||
    fail "files not owned by root/root"
awk '{ print $6 }' "$TMP_DIR/contents" >"$TMP_DIR/paths"
grep -Ev '^\./($|usr/|etc/|lib/)' "$TMP_DIR/paths" && fail "files outside /usr, /etc and /lib"
grep -E '^\./usr/local/' "$TMP_DIR/paths" && fail "files in /usr/local"
for f in usr/bin/tcpmsgd usr/bin/tcpmsg usr/bin/tcpmsg-transports \
    usr/share/tcpmsg/web/index.html usr/share/tcpmsg/web/app.js usr/share/tcpmsg/web/style.css \
    usr/share/tcpmsg/dashboards/grafana-tcpmsg.json usr/share/tcpmsg/dashboards/tcpmsg-alerts.yml \
    usr/share/doc/tcpmsg/copyright usr/share/doc/tcpmsg/changelog.gz usr/share/doc/tcpmsg/README.md \
    usr/share/man/man8/tcpmsgd.8.gz usr/share/man/man1/tcpmsg.1.gz \
    usr/share/man/man1/tcpmsg-transports.1.gz; do
    grep -qx "\./$f" "$TMP_DIR/paths" || fail "the package has no /$f"
done
grep -E '^\./usr/share/man/.*[^z]$' "$TMP_DIR/paths" | grep -v '/$' && fail "man pages not gzipped"

ROOT=$TMP/root
dpkg-deb -x "$deb" "$ROOT" || fail "dpkg-deb -x exits $?"
dpkg-deb -e "$deb" "$TMP/control" || fail "dpkg-deb -e exits $?"
for f in tcpmsgd tcpmsg tcpmsg-transports; do
    readelf -S "$ROOT/usr/bin/$f" | grep -q '\.symtab' && fail "usr/bin/$f is not stripped"
done
head -n 1 <(gzip -dc "$ROOT/usr/share/doc/tcpmsg/changelog.gz") | grep -q "^tcpmsg ($VERSION) " ||
    fail "the changelog's latest entry is not version $VERSION (cmake/debian/changelog)"
# Every file under /etc, and nothing else, is a conffile.
(cd "$ROOT" && find etc -type f 2>/dev/null | sed 's|^|/|' | sort) >"$TMP_DIR/etc_files"
sort "$TMP/control/conffiles" 2>/dev/null | diff "$TMP_DIR/etc_files" - >&2 ||
    fail "conffiles (right) differ from the files under /etc (left)"
log "contents: $(grep -c '[^/]$' "$TMP_DIR/paths") files, conffiles: $(wc -l <"$TMP_DIR/etc_files")"
# A systemd unit in the package names programs and files of the package: the
# build's install paths are baked into it, and the package installs in /usr.
for unit in "$ROOT"/lib/systemd/system/*.service "$ROOT"/usr/lib/systemd/system/*.service; do
    [ -f "$unit" ] || continue
    exe=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$unit" | head -n 1)
    if [ -z "$exe" ] || [ ! -x "$ROOT$exe" ]; then
        fail "${unit#"$ROOT"}: ExecStart runs '$exe', which the package does not install"
    fi
    sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit" >"$TMP_DIR/env_files"
    while read -r env; do
        grep -qx "$env" "$TMP_DIR/etc_files" ||
            fail "${unit#"$ROOT"}: EnvironmentFile $env is not a conffile of the package"
    done <"$TMP_DIR/env_files"
    log "${unit#"$ROOT"}: runs $exe, reads $(tr '\n' ' ' <"$TMP_DIR/env_files")"
done

# The extracted programs, run from the scratch root.
start_tcpmsgd "$ROOT/usr/bin/tcpmsgd"
grep -qF "status page files web_root=$ROOT/usr/share/tcpmsg/web from=install-prefix" \
    "$TMP_DIR/tcpmsgd.log" || fail "the extracted tcpmsgd does not take the extracted web root"
http_get 127.0.0.1 "$HTTP_PORT" / "$TMP_DIR/index" || fail "GET / from the extracted tcpmsgd"
cmp -s "$TMP_DIR/index" "$ROOT/usr/share/tcpmsg/web/index.html" ||
    fail "GET / is not the extracted index.html"
cmp -s "$TMP_DIR/index" "$SOURCE_DIR/web/index.html" || fail "the packaged index.html is not web/index.html"
reply=$(timeout 20 "$ROOT/usr/bin/tcpmsg" "127.0.0.1:$PORT" "hello from the package") ||
    fail "the extracted tcpmsg exits $?"
[[ $reply == *"in "*" us: hello from the package" ]] || fail "the extracted tcpmsg printed '$reply'"
"$ROOT/usr/bin/tcpmsg" --version | grep -q "^tcpmsg $VERSION" || fail "tcpmsg --version"
stop_tcpmsgd
log "extracted: the client got its reply, the status page came from $ROOT/usr/share/tcpmsg/web"

# lintian: an error (E:) fails the test, warnings are shown.
lintian --fail-on none "$deb" >"$TMP_DIR/lintian.out" 2>"$TMP_DIR/lintian.err"
rc=$?
grep -v '^running with root privileges' "$TMP_DIR/lintian.err" >&2
[ "$rc" -eq 0 ] || fail "lintian exits $rc"
sed 's/^/lintian: /' "$TMP_DIR/lintian.out" >&2
grep -q '^E:' "$TMP_DIR/lintian.out" && fail "lintian reports errors"
log "lintian: $(grep -c '^W:' "$TMP_DIR/lintian.out") warnings, no error"
log "ok"
