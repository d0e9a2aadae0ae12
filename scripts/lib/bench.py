"""scripts/bench's driver: runs the HTTP ceiling, hookbridge -> NATS JetStream and hookbridge -> Kafka
under the same load from `hookbridge-loadgen`, in one run, and prints one table.

Every number comes from a process it started: throughput and latency from the load generator's
report (2xx answers, and events read back from the broker), CPU from /proc/PID/stat of the gateway
and of the broker, peak memory from VmHWM. Ratios to the ceiling are taken within the run, so they
hold on a noisy machine. Targets are printed beside the numbers; nothing here asserts.

Environment (set by scripts/bench): HOOKBRIDGE_BIN, HOOKBRIDGE_LOADGEN_BIN, HTTP_CEILING_BIN,
HOOKBRIDGE_NATS_SERVER_BIN, HOOKBRIDGE_JAVA, HOOKBRIDGE_KAFKA_LIBS, HOOKBRIDGE_KAFKA_LOG4J (Apache
Kafka, from scripts/lib/brokers.sh); knobs: BENCH_SECONDS (10), BENCH_CONNECTIONS (256),
BENCH_WORKERS (2).
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "256"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
TICK = os.sysconf("SC_CLK_TCK")
SECRET = "bench-cronofy-secret"
RUN = str(int(time.time()))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); [0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def wait_tcp(port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"bench: nothing listens on {port} after {timeout} s")


def kafka_broker(workdir, port, cport):
    """Apache Kafka, one KRaft node, formatted in workdir; the Proc is the JVM itself."""
    props = os.path.join(workdir, "kafka.properties")
    with open(props, "w") as f:
        f.write(
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.bootstrap.servers=127.0.0.1:{cport}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n"
            "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
            f"log.dirs={os.path.join(workdir, 'kafka-data')}\nnum.partitions=1\n"
            "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=1\n"
            "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
        )
    java = os.environ.get("HOOKBRIDGE_JAVA", "java")
    classpath = os.path.join(os.environ["HOOKBRIDGE_KAFKA_LIBS"], "*")
    log4j = f"-Dlog4j2.configurationFile={os.environ.get('HOOKBRIDGE_KAFKA_LOG4J', '')}"
    cluster = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=").replace("-", "A", 1)
    subprocess.run([java, "-XX:TieredStopAtLevel=1", log4j, "-cp", classpath, "kafka.tools.StorageTool",
                    "format", "--standalone", "--cluster-id", cluster, "--config", props],
                   check=True, stdout=subprocess.DEVNULL)
    return Proc("kafka", [java, "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", log4j, "-cp", classpath,
                          "kafka.Kafka", props], log=os.path.join(workdir, "kafka.log"))


class Proc:
    """A child process in its own session, killed with its children on exit."""

    def __init__(self, name, argv, env=None, log=None):
        self.name = name
        self.log = open(log or os.devnull, "wb")
        self.started = time.monotonic()
        self.p = subprocess.Popen(
            argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()
        self.log.close()


def loadgen(config, port, source, extra, env):
    argv = [
        os.environ["HOOKBRIDGE_LOADGEN_BIN"], "--config", config,
        "--target", f"127.0.0.1:{port}", "--source", source, "--json",
    ] + extra
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bench: loadgen failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def measured(config, port, source, env, server_pid, broker_pid, extra=()):
    """A warm-up run, then the measured run with CPU taken around it."""
    loadgen(config, port, source, ["--connections", str(CONNECTIONS), "--duration", "2",
                                   "--warmup", "0", "--no-consume"], env)
    cpu0 = cpu_seconds(server_pid)
    broker0 = cpu_seconds(broker_pid) if broker_pid else 0.0
    report = loadgen(config, port, source, ["--connections", str(CONNECTIONS), "--duration",
                                            str(SECONDS), "--warmup", "0"] + list(extra), env)
    report["cpu_us"] = (cpu_seconds(server_pid) - cpu0) * 1e6 / max(report["ok"], 1)
    if broker_pid:
        report["broker_cpu_us"] = (cpu_seconds(broker_pid) - broker0) * 1e6 / max(report["ok"], 1)
    report["peak_rss_mib"] = memory_kib(server_pid, "VmHWM") / 1024
    return report


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def server_p99_ms(before, after, outcome):
    """p99 of hookbridge_request_duration_seconds{outcome} between two scrapes, as the upper bound
    of the bucket it falls in (server-side: no client queueing in it)."""
    def buckets(text):
        out = {}
        for line in text.splitlines():
            if (line.startswith("hookbridge_request_duration_seconds_bucket{")
                    and f'outcome="{outcome}"' in line):
                le = line.split('le="')[1].split('"')[0]
                out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
        return out
    b0, b1 = buckets(before), buckets(after)
    counts = sorted((le, b1[le] - b0.get(le, 0.0)) for le in b1)
    total = counts[-1][1] if counts else 0
    if total <= 0:
        return None
    for le, cumulative in counts:
        if cumulative >= 0.99 * total:
            return le * 1000
    return None


def config_text(port, publisher, publisher_toml, max_in_flight=4096):
    return f"""
[server]
listen = "127.0.0.1:{port}"
workers = {WORKERS}
log_format = "text"
max_in_flight = {max_in_flight}
publish_timeout_ms = 5000
shutdown_delay_ms = 0

[dedup]
store = "memory"

[publishers.{publisher}]
{publisher_toml}

[sources.cronofy]
provider = "cronofy"
publisher = "{publisher}"
topic = "bench.{RUN}.{publisher}.{{provider}}"
[sources.cronofy.verify]
client_secrets = ["env:BENCH_CRONOFY_SECRET"]
"""


def start_gateway(workdir, name, text, env):
    path = os.path.join(workdir, f"{name}.toml")
    with open(path, "w") as f:
        f.write(text)
    port = int(text.split('listen = "127.0.0.1:')[1].split('"')[0])
    gateway = Proc(name, [os.environ["HOOKBRIDGE_BIN"], "serve", "--config", path], env,
                   os.path.join(workdir, f"{name}.log"))
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if gateway.p.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: {name} did not become ready; see {workdir}/{name}.log")
        time.sleep(0.005)
    ready_ms = (time.monotonic() - gateway.started) * 1000
    time.sleep(1.0)
    idle_mib = memory_kib(gateway.pid, "VmRSS") / 1024
    return gateway, path, port, ready_ms, idle_mib


def main():
    workdir = tempfile.mkdtemp(prefix="hookbridge-bench-")
    env = dict(os.environ, BENCH_CRONOFY_SECRET=SECRET, RUST_LOG="warn")
    procs = []
    rows = []
    try:
        nats_port, kafka_port, controller_port = free_port(), free_port(), free_port()
        nats = Proc("nats", [os.environ["HOOKBRIDGE_NATS_SERVER_BIN"], "-a", "127.0.0.1", "-p",
                             str(nats_port), "-js", "-sd", os.path.join(workdir, "nats")])
        kafka = kafka_broker(workdir, kafka_port, controller_port)
        procs += [nats, kafka]
        wait_tcp(nats_port)
        wait_tcp(kafka_port, timeout=90.0)
        nats_toml = (f'kind = "nats"\nurl = "nats://127.0.0.1:{nats_port}"\nstream = "BENCH"\n'
                     f'subjects = ["bench.>"]\nstorage = "file"')
        kafka_toml = (f'kind = "kafka"\nbootstrap_servers = "127.0.0.1:{kafka_port}"\n'
                      f'create_topics = true\ntopic_partitions = 4\nlinger_ms = 1')

        # 1. The HTTP ceiling: read the body, answer 204.
        port = free_port()
        ceiling = Proc("ceiling", [os.environ["HTTP_CEILING_BIN"], f"127.0.0.1:{port}",
                                   str(WORKERS)])
        procs.append(ceiling)
        wait_tcp(port)
        signing = os.path.join(workdir, "signing.toml")
        with open(signing, "w") as f:
            f.write(config_text(port, "nats", nats_toml))
        report = measured(signing, port, "cronofy", env, ceiling.pid, None, ["--no-consume"])
        rows.append(("HTTP ceiling (actix-web, 204)", report, None))
        ceiling.stop()

        startup = {}
        # 2. and 3. hookbridge with each broker, a fresh process each so VmHWM is its own.
        for name, label, toml, broker in (
            ("nats", "hookbridge -> NATS JetStream", nats_toml, nats),
            ("kafka", "hookbridge -> Apache Kafka (idempotent, acks=all)", kafka_toml, kafka),
        ):
            text = config_text(free_port(), name, toml)
            gateway, path, port, ready_ms, idle_mib = start_gateway(workdir, name, text, env)
            procs.append(gateway)
            startup[name] = (ready_ms, idle_mib)
            report = measured(path, port, "cronofy", env, gateway.pid, broker.pid)
            rows.append((label, report, name))
            gateway.stop()

        # 4. Overload: twice the Kafka rate, open loop, more connections than max_in_flight.
        kafka_rate = rows[2][1]["ok_per_second"]
        text = config_text(free_port(), "kafka", kafka_toml, max_in_flight=CONNECTIONS)
        gateway, path, port, _, _ = start_gateway(workdir, "overload", text, env)
        procs.append(gateway)
        loadgen(path, port, "cronofy", ["--connections", str(CONNECTIONS), "--duration", "2",
                                        "--warmup", "0", "--no-consume"], env)
        before = scrape(port)
        overload = loadgen(path, port, "cronofy", [
            "--connections", str(CONNECTIONS * 4), "--rate", f"{2 * kafka_rate:.0f}",
            "--duration", str(SECONDS), "--warmup", "0"], env)
        overload["peak_rss_mib"] = memory_kib(gateway.pid, "VmHWM") / 1024
        overload["server_p99_ms"] = server_p99_ms(before, scrape(port), "published")
        gateway.stop()
    finally:
        for p in procs:
            p.stop()

    print_table(rows, startup, overload)
    results = {"rows": [{"setup": l, **r} for l, r, _ in rows], "startup": startup,
               "overload": overload, "seconds": SECONDS, "connections": CONNECTIONS,
               "workers": WORKERS}
    out = os.environ.get("BENCH_RESULTS", "target/bench/results.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nraw results: {out}; logs: {workdir}")
    if os.environ.get("BENCH_KEEP_LOGS") is None:
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(rows, startup, overload):
    ceiling = rows[0][1]["ok_per_second"]
    print(f"\n{CONNECTIONS} connections, {WORKERS} workers, {SECONDS:.0f} s measured, "
          f"~1 KB signed Cronofy webhooks, all processes on this machine "
          f"({os.cpu_count()} CPUs)\n")
    head = ("setup", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "broker µs/req",
            "peak RSS MiB", "x ceiling", "consumed", "non-2xx")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for label, r, _ in rows:
        consumer = r.get("consumer")
        consumed = (f"{consumer['events']}/{r['ok']}" + (f" dup {consumer['duplicates']}"
                    if consumer["duplicates"] else "")) if consumer else "-"
        non2xx = sum(n for s, n in r["statuses"].items() if not 200 <= int(s) < 300)
        broker = f"{r['broker_cpu_us']:.1f}" if "broker_cpu_us" in r else "-"
        print(f"| {label} | {r['ok_per_second']:.0f} | {r['latency']['p50_us'] / 1000:.2f} | "
              f"{r['latency']['p99_us'] / 1000:.2f} | {r['cpu_us']:.1f} | {broker} | "
              f"{r['peak_rss_mib']:.1f} | {r['ok_per_second'] / ceiling:.2f} | {consumed} | "
              f"{non2xx + r['io_errors']} |")
    nats, kafka = rows[1][1], rows[2][1]
    o_503 = overload["statuses"].get("503", 0)
    print(f"\nstart to ready: NATS {startup['nats'][0]:.0f} ms, Kafka {startup['kafka'][0]:.0f} ms;"
          f" idle RSS: {startup['nats'][1]:.1f} / {startup['kafka'][1]:.1f} MiB")
    sent_rate = overload["sent"] / overload["seconds"]
    server_p99 = overload["server_p99_ms"]
    print(f"overload (Kafka, open loop at {overload['target_rate']:.0f} req/s = 2x; the generator "
          f"managed {sent_rate:.0f} req/s over {overload['seconds']:.0f} s): "
          f"{overload['ok_per_second']:.0f} req/s accepted, server-side p99 of accepted "
          f"<= {server_p99} ms (client-side, with the generator's own backlog, "
          f"{overload['latency']['p99_us'] / 1000:.0f} ms); "
          f"{o_503} answered 503 ({overload['with_retry_after']} with Retry-After), "
          f"p99 of those {overload['rejected_latency']['p99_us'] / 1000:.1f} ms; "
          f"peak RSS {overload['peak_rss_mib']:.1f} MiB; io errors {overload['io_errors']}")
    ceiling_ratio = lambda r: r["ok_per_second"] / ceiling
    checks = [
        ("Kafka >= 0.47 x ceiling", ceiling_ratio(kafka) >= 0.47, f"{ceiling_ratio(kafka):.2f}"),
        ("Kafka p99 <= 10 ms", kafka["latency"]["p99_us"] <= 10_000,
         f"{kafka['latency']['p99_us'] / 1000:.2f} ms"),
        ("Kafka <= 22 CPU µs/req", kafka["cpu_us"] <= 22, f"{kafka['cpu_us']:.1f}"),
        ("NATS >= 0.40 x ceiling", ceiling_ratio(nats) >= 0.40, f"{ceiling_ratio(nats):.2f}"),
        ("NATS p99 <= 12 ms", nats["latency"]["p99_us"] <= 12_000,
         f"{nats['latency']['p99_us'] / 1000:.2f} ms"),
        ("peak RSS <= 64 MiB", max(nats["peak_rss_mib"], kafka["peak_rss_mib"],
                                   overload["peak_rss_mib"]) <= 64,
         f"{max(nats['peak_rss_mib'], kafka['peak_rss_mib'], overload['peak_rss_mib']):.1f}"),
        ("idle RSS <= 20 MiB", max(s[1] for s in startup.values()) <= 20,
         f"{max(s[1] for s in startup.values()):.1f}"),
        ("start to ready <= 200 ms", max(s[0] for s in startup.values()) <= 200,
         f"{max(s[0] for s in startup.values()):.0f} ms"),
        ("overload: excess gets 503 + Retry-After", o_503 > 0 and overload["with_retry_after"] == o_503,
         f"{o_503} x 503"),
        ("overload: accepted p99 (server-side) < 5 s (Cronofy's deadline)",
         server_p99 is not None and server_p99 < 5_000, f"<= {server_p99} ms"),
        ("every accepted event consumed, none twice",
         all(r["consumer"]["events"] == r["ok"] and r["consumer"]["duplicates"] == 0
             and r["consumer"]["undecodable"] == 0 for r in (nats, kafka)), ""),
    ]
    print("\n| target | result | measured |\n|---|---|---|")
    for name, ok, value in checks:
        print(f"| {name} | {'met' if ok else 'MISSED'} | {value} |")


if __name__ == "__main__":
    sys.exit(main())
