# Sourced by the run_* scripts: what they read from their command lines.

# Prints the header comment of the script being run (its usage) to stderr.
print_usage() {
    awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" >&2
}

# require_args MIN PATTERN "$@": prints the usage and exits 1 unless there are MIN arguments or more and the first
# matches the extended regex PATTERN (empty: any).
require_args() {
    local min="$1" pattern="$2"
    shift 2
    if [ $# -lt "$min" ] || { [ -n "$pattern" ] && ! [[ "$1" =~ $pattern ]]; }; then
        print_usage
        exit 1
    fi
}

# Prints the --output_dir given among the arguments (as --output_dir=D or --output_dir D), "output" if none.
output_dir_of() {
    local dir=output previous=""
    for arg in "$@"; do
        case "$arg" in --output_dir=*) dir="${arg#--output_dir=}" ;; esac
        if [ "$previous" = "--output_dir" ]; then dir="$arg"; fi
        previous="$arg"
    done
    echo "$dir"
}
