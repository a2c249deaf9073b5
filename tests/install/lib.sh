# Sourced by the install tests.

# The public functions: every name a header under include/ declares with
# GT_API, one per line, sorted.  Declarations span lines, so the name is
# the identifier before the first "(" after GT_API.
public_functions() {
    cat "$1"/socketloop/*.h | tr '\n' ' ' | sed 's/#define GT_API[^#]*//g' |
        grep -o 'GT_API[^(;]*(' | sed 's/($//; s/.*[ *]//' | sort -u
}

# The README's first code block of the given language after the heading.
readme_block() { # README HEADING LANG
    awk -v h="$2" -v l="$3" '
        $0 == h { f = 1; next }
        f && $0 == "```" l { c = 1; next }
        c && $0 == "```" { exit }
        c' "$1"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
