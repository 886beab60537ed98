#!/bin/bash
# --version of tcpmsgd and tcpmsg: both print the project version, followed in
# a git checkout by the commit built from ("0.1.0 (git a0fe14a-dirty)"). Then
# the script that makes the string (cmake/write_version.cmake), run on scratch
# trees: a commit, the same tree with a change (-dirty), a tree that is not a
# checkout (the version alone), and a rerun that changes nothing, which must
# leave the generated file untouched so nothing is recompiled.
# usage: version.sh TCPMSGD TCPMSG PROJECT_VERSION SOURCE_DIR CMAKE WRITE_VERSION_SCRIPT
set -u
fail() { echo "version.sh: FAIL: $*" >&2; exit 1; }
[ $# -eq 6 ] || { echo "usage: $0 TCPMSGD TCPMSG VERSION SOURCE_DIR CMAKE SCRIPT" >&2; exit 2; }
tcpmsgd=$1 tcpmsg=$2 version=$3 source_dir=$4 cmake=$5 script=$6
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tcpmsg-version.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

d=$("$tcpmsgd" --version) || fail "tcpmsgd --version exits $?"
c=$("$tcpmsg" --version) || fail "tcpmsg --version exits $?"
v=${d#tcpmsgd }
[ "$d" = "tcpmsgd $v" ] || fail "tcpmsgd --version prints '$d'"
[ "$c" = "tcpmsg $v" ] || fail "tcpmsg --version prints '$c', tcpmsgd '$d'"
[ "$("$tcpmsgd" -V)" = "$d" ] || fail "tcpmsgd -V differs from --version"
[ "$("$tcpmsg" -V)" = "$c" ] || fail "tcpmsg -V differs from --version"
if [ -e "$source_dir/.git" ] && command -v git >/dev/null &&
    git -C "$source_dir" rev-parse -q --verify HEAD >/dev/null 2>&1; then
    # "0.1.0 (git a0fe14a)", "(git a0fe14a-dirty)", or with a tag
    # "(git v0.1.0-3-ga0fe14a)". The commit must be HEAD or one before it:
    # the build may predate the latest commit, but it cannot come from
    # another history. (The exact string is checked below, on scratch trees.)
    [[ $v =~ ^"$version (git "(.*-g)?([0-9a-f]{7,})(-dirty)?")"$ ]] ||
        fail "version '$v' is not '$version (git COMMIT[-dirty])'"
    commit=${BASH_REMATCH[2]}
    git -C "$source_dir" merge-base --is-ancestor "$commit" HEAD 2>/dev/null ||
        fail "version '$v': $commit is not a commit of this checkout's history"
else
    [ "$v" = "$version" ] || fail "version '$v', want '$version' outside a git checkout"
fi
echo "version.sh: tcpmsgd and tcpmsg print $v"

command -v git >/dev/null || fail "git is not installed"
make_version() { # TREE GIT: the string write_version.cmake makes for TREE
    "$cmake" -DVERSION=9.8.7 -DSOURCE_DIR="$1" -DGIT="$2" -DOUT="$tmp/version.c" -P "$script" ||
        fail "write_version.cmake exits $?"
    sed -n 's/^const char tcpmsg_version\[\] = "\(.*\)";$/\1/p' "$tmp/version.c"
}
repo=$tmp/repo
mkdir "$repo" && cd "$repo" || exit 1
if ! { git init -q . && echo one >file && git add file &&
    git -c user.name=t -c user.email=t@localhost commit -q -m one; }; then
    fail "cannot make a git repository"
fi
hash=$(git rev-parse --short HEAD)
got=$(make_version "$repo" "$(command -v git)")
[ "$got" = "9.8.7 (git $hash)" ] || fail "clean checkout: '$got', want '9.8.7 (git $hash)'"
echo two >file
got=$(make_version "$repo" "$(command -v git)")
[ "$got" = "9.8.7 (git $hash-dirty)" ] || fail "changed checkout: '$got', want '9.8.7 (git $hash-dirty)'"
touch -d @1000000000 "$tmp/version.c"
got=$(make_version "$repo" "$(command -v git)")
[ "$(stat -c %Y "$tmp/version.c")" = 1000000000 ] || fail "an unchanged version rewrote the file"
rm -rf "$repo/.git"
got=$(make_version "$repo" "$(command -v git)")
[ "$got" = "9.8.7" ] || fail "not a checkout: '$got', want '9.8.7'"
got=$(make_version "$repo" "")
[ "$got" = "9.8.7" ] || fail "no git: '$got', want '9.8.7'"
echo "version.sh: write_version.cmake: commit, -dirty, no checkout, no rewrite: ok"
