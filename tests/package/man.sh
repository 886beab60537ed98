#!/bin/bash
# A manual page renders without a warning, has the sections a reader looks
# for, and documents exactly the options its program's --help lists: each
# option of --help has an entry under OPTIONS and each entry there is an
# option of --help. For tcpmsg, whose --help has groups (every command,
# "bench:", "probe:"), an option must be in the same group in both, and
# `PROGRAM SUBCOMMAND --help` is checked as well as `PROGRAM --help`. The
# exit statuses --help names are those of EXIT STATUS, no more, no fewer.
# usage: man.sh [--sections "NAME,...,SEE ALSO"] PAGE PROGRAM [SUBCOMMAND]...
set -u
fail() { echo "man.sh: FAIL: $*" >&2; exit 1; }

sections="NAME,SYNOPSIS,DESCRIPTION,OPTIONS,EXIT STATUS,EXAMPLES,SEE ALSO"
if [ "${1:-}" = --sections ]; then
    sections=$2
    shift 2
fi
[ $# -ge 2 ] || { echo "usage: $0 [--sections LIST] PAGE PROGRAM [SUBCOMMAND]..." >&2; exit 2; }
page=$1 program=$2
shift 2
[ -f "$page" ] || fail "no page $page"
[ -x "$program" ] || fail "not an executable: $program"
for p in groff man; do
    command -v "$p" >/dev/null || fail "$p is not installed (run .ci/setup: groff-base, man-db)"
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tcpmsg-man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# groff's own check: every warning on (-ww), no output (-z).
groff -man -ww -z "$page" 2>"$tmp/groff.err" || fail "groff exits $? on $page"
[ -s "$tmp/groff.err" ] && fail "groff warns about $page: $(cat "$tmp/groff.err")"

# man renders it as a reader sees it; --warnings is how lintian checks pages.
MANWIDTH=80 man --warnings -P cat -l "$page" >"$tmp/rendered" 2>"$tmp/man.err" ||
    fail "man -l exits $? on $page: $(cat "$tmp/man.err")"
[ -s "$tmp/man.err" ] && fail "man -l warns about $page: $(cat "$tmp/man.err")"
IFS=, read -r -a want <<<"$sections"
for s in "${want[@]}"; do
    grep -qx "$s" "$tmp/rendered" || fail "$page has no $s section"
done
name=${program##*/}
grep -Eq "^ *$name +- " "$tmp/rendered" || fail "the NAME line of $page is not '$name - ...'"

# The options of --help, one "GROUP OPTION" a line: an option line starts
# with two spaces and a dash ("  -v, --verbose", "  --port N"); a line
# "bench: ..." or "probe: ..." starts a group.
help_options() {
    awk '/^(bench|probe):/ { group = substr($1, 1, length($1) - 1) }
         /^  -/ { if ($1 ~ /^-[A-Za-z],$/) { print group, substr($1, 1, 2); $1 = "" }
                  split($0, f, " "); print group, f[1] }' group=all
}

# The same from the page: the tag line after each .TP under OPTIONS, with
# roff's \- and font escapes removed; a .SS naming bench or probe starts
# that group.
page_options() {
    awk '/^\.SH/ { in_opts = ($0 ~ /^\.SH "?OPTIONS"?$/); next }
         !in_opts { next }
         /^\.SS/ { group = /bench/ ? "bench" : /probe/ ? "probe" : "all"; next }
         /^\.TP/ { tag = 1; next }
         tag { tag = 0
               gsub(/\\-/, "-"); gsub(/\\f[BIRP]/, ""); gsub(/[",]/, " ")
               for (i = 2; i <= NF; i++) if ($i ~ /^--?[A-Za-z]/) print group, $i }' group=all "$page"
}

page_options | sort -u >"$tmp/page"
[ "$(wc -l <"$tmp/page")" -ge 3 ] || fail "found fewer than 3 options in $page: $(cat "$tmp/page")"
for sub in "" "$@"; do
    # shellcheck disable=SC2086 # sub is empty or one word
    "$program" $sub --help >"$tmp/help.txt" 2>&1 || fail "$name $sub --help exits $?"
    help_options <"$tmp/help.txt" | sort -u >"$tmp/help"
    [ "$(wc -l <"$tmp/help")" -ge 3 ] || fail "found fewer than 3 options in $name $sub --help"
    missing=$(comm -23 "$tmp/help" "$tmp/page")
    extra=$(comm -13 "$tmp/help" "$tmp/page")
    [ -z "$missing" ] || fail "in '$name ${sub:+$sub }--help' but not in $page (group option):
$missing"
    [ -z "$extra" ] || fail "in $page but not in '$name ${sub:+$sub }--help' (group option):
$extra"
    echo "man.sh: $name ${sub:+$sub }--help: $(wc -l <"$tmp/help") options, all in ${page##*/} and no other"
done
# The exit statuses: those --help names after "Exit status:" are the
# entries of EXIT STATUS (a ".TP" and ".B N" each), and the other way round.
"$program" --help >"$tmp/help.txt" 2>&1
if grep -q '^Exit status:' "$tmp/help.txt"; then
    sed -n '/^Exit status:/,$p' "$tmp/help.txt" | grep -oE '(^|[ ;:,])[0-9]+ ' | tr -dc '0-9\n' |
        sort -un >"$tmp/help_codes"
    awk '/^\.SH/ { in_exit = ($0 ~ /EXIT STATUS/); next }
         in_exit && /^\.TP/ { tag = 1; next }
         tag { tag = 0; if ($1 == ".B" && $2 ~ /^[0-9]+$/) print $2 }' "$page" | sort -un >"$tmp/page_codes"
    [ -s "$tmp/help_codes" ] || fail "no exit status found in $name --help"
    diff "$tmp/help_codes" "$tmp/page_codes" >/dev/null ||
        fail "exit statuses of $name --help ($(tr '\n' ' ' <"$tmp/help_codes")) differ from $page's ($(tr '\n' ' ' <"$tmp/page_codes"))"
    echo "man.sh: exit statuses $(tr '\n' ' ' <"$tmp/help_codes")in --help and in ${page##*/}"
fi
echo "man.sh: ok"
