"""Independent consumer for hookbridge events: reads NATS JetStream or Kafka from the beginning and
prints every message as one JSON object per line, decoding the body with schemas/event.avsc.

Deliberately shares no code with the gateway: only fastavro, confluent-kafka and nats-py, and the
schema file read from disk (or, with --registry, confluent-kafka's AvroDeserializer and the
registry the gateway registered its schemas in). Run it through scripts/consume (which sets up the venv).

    consume nats  --url nats://127.0.0.1:14222 --stream HOOKBRIDGE --subject 'webhooks.>'
    consume kafka --bootstrap 127.0.0.1:19092 --topic webhooks.cronofy.calendar.changed
    consume kafka --bootstrap 127.0.0.1:19092 --topic webhooks.cronofy.calendar.changed \
                  --registry http://127.0.0.1:18081/apis/ccompat/v7

Stops after --count messages (0 = no limit) or --timeout seconds, whichever comes first. Exits 0 when
it read at least --count messages, 1 when fewer (or on a connection problem), 2 when a message did
not decode as an Event.
"""

import argparse
import asyncio
import base64
import datetime as dt
import io
import json
import os
import sys
import time
import uuid

import fastavro

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schemas", "event.avsc")
PROG = "consume"


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def load_schema():
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return fastavro.parse_schema(json.load(f))


def text_or_base64(raw):
    """UTF-8 text when the bytes decode as UTF-8, else {"base64": ...}."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}


def to_json(value):
    """Make a fastavro-decoded value JSON-friendly."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        # return_record_name=True: (full record name, record) for the `data` union.
        return {value[0]: to_json(value[1])}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return text_or_base64(bytes(value))
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return value


class Decoder:
    def __init__(self):
        self.schema = load_schema()
        self.failures = 0

    def decode(self, raw):
        """(event, error): the Avro datum as JSON, or None and why it did not decode."""
        buf = io.BytesIO(raw)
        try:
            record = fastavro.schemaless_reader(buf, self.schema, return_record_name=True)
        except Exception as e:  # noqa: BLE001 - any decode failure is reported, not raised
            self.failures += 1
            return None, f"avro decode failed: {type(e).__name__}: {e}"
        left = len(raw) - buf.tell()
        if left:
            self.failures += 1
            return to_json(record), f"{left} trailing byte(s) after the Avro datum"
        return to_json(record), None


class RegistryDecoder:
    """Confluent wire format: confluent-kafka's AvroDeserializer, with the writer's schema fetched
    from the registry by the id in the record. Nothing from schemas/ is used."""

    def __init__(self, url):
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        self.failures = 0
        self.deserializer = AvroDeserializer(SchemaRegistryClient({"url": url}))
        self.context = lambda topic: SerializationContext(topic, MessageField.VALUE)
        self.topic = None

    def decode(self, raw):
        try:
            record = self.deserializer(raw, self.context(self.topic))
        except Exception as e:  # noqa: BLE001 - any decode failure is reported, not raised
            self.failures += 1
            return None, f"registry decode failed: {type(e).__name__}: {e}"
        return to_json(record), None


class Printer:
    def __init__(self, pretty):
        self.pretty = pretty
        self.count = 0

    def emit(self, destination, key, headers, value, decoder):
        decoder.topic = destination
        event, error = decoder.decode(value)
        out = {"destination": destination, "key": key, "headers": headers, "event": event}
        if error:
            out["decode_error"] = error
            out["value_base64"] = base64.b64encode(value).decode("ascii")
            log(f"message {self.count + 1} on {destination}: {error}")
        print(json.dumps(out, indent=2 if self.pretty else None, ensure_ascii=False), flush=True)
        self.count += 1


# --------------------------------------------------------------------------------------------- NATS


async def consume_nats(args, printer, decoder):
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import DeliverPolicy
    from nats.js.errors import NotFoundError

    deadline = time.monotonic() + args.timeout

    async def quiet_error(e):
        if args.verbose:
            log(f"nats: {e}")

    try:
        nc = await nats.connect(
            args.url,
            connect_timeout=min(5.0, max(0.5, args.timeout)),
            allow_reconnect=False,
            error_cb=quiet_error,
            name="hookbridge-consume",
        )
    except Exception as e:  # noqa: BLE001
        log(f"cannot connect to NATS at {args.url}: {type(e).__name__}: {e}")
        return False
    try:
        js = nc.jetstream()
        sub = None
        while sub is None:
            try:
                # Ephemeral ordered push consumer: deliver all, no acks, filtered by subject.
                sub = await js.subscribe(
                    args.subject,
                    stream=args.stream,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.ALL,
                )
            except NotFoundError:
                if time.monotonic() >= deadline:
                    log(f"stream {args.stream} not found on {args.url}")
                    return False
                await asyncio.sleep(0.25)
        while args.count == 0 or printer.count < args.count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                msg = await sub.next_msg(timeout=min(remaining, 1.0))
            except NatsTimeout:
                continue
            headers = dict(msg.headers or {})
            printer.emit(msg.subject, None, headers, msg.data, decoder)
        return True
    finally:
        try:
            await nc.close()
        except Exception:  # noqa: BLE001
            pass


# -------------------------------------------------------------------------------------------- Kafka


def consume_kafka(args, printer, decoder):
    from confluent_kafka import Consumer, KafkaError

    deadline = time.monotonic() + args.timeout
    errors = []

    def on_error(err):
        errors.append(err)
        if args.verbose:
            log(f"kafka: {err}")

    # A group consumer, as users read: subscribe, the broker assigns partitions (KIP-848
    # protocol), a fresh group starts at the earliest offset.
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"hookbridge-consume-{uuid.uuid4()}",
            "group.protocol": "consumer",
            "enable.auto.commit": True,
            "auto.offset.reset": "earliest",
            "error_cb": on_error,
            "log_level": 7 if args.verbose else 0,
        }
    )
    try:
        consumer.subscribe([args.topic])
        while args.count == 0 or printer.count < args.count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if printer.count == 0 and errors:
                    log(f"kafka at {args.bootstrap}: {errors[-1]}")
                break
            msg = consumer.poll(min(remaining, 1.0))
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    log(f"kafka: {msg.error()}")
                continue
            raw_key = msg.key()
            key = text_or_base64(raw_key)
            headers = {}
            for name, value in msg.headers() or []:
                headers[name] = text_or_base64(value) if value is not None else None
            printer.emit(msg.topic(), key, headers, msg.value() or b"", decoder)
        return True
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------------------- CLI


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Read hookbridge events from NATS JetStream or Kafka (from the beginning) and print "
        "each one as JSON, decoded with schemas/event.avsc.",
    )
    sub = p.add_subparsers(dest="broker", required=True)

    def common(sp):
        sp.add_argument("--count", type=int, default=1,
                        help="stop after N messages; exit 1 if fewer arrive (0 = no limit, default 1)")
        sp.add_argument("--timeout", type=float, default=10.0, help="give up after SECONDS (default 10)")
        sp.add_argument("--pretty", action="store_true", help="indent the JSON")
        sp.add_argument("--verbose", action="store_true", help="show client errors and logs")

    n = sub.add_parser("nats", help="JetStream: ephemeral ordered consumer, deliver all")
    n.add_argument("--url", default="nats://127.0.0.1:4222")
    n.add_argument("--stream", default="HOOKBRIDGE")
    n.add_argument("--subject", default="webhooks.>")
    common(n)

    k = sub.add_parser("kafka", help="Kafka: a new consumer group from the earliest offset")
    k.add_argument("--bootstrap", default="127.0.0.1:9092")
    k.add_argument("--topic", required=True)
    k.add_argument("--registry", metavar="URL",
                   help="Confluent wire format: decode with AvroDeserializer and this schema registry "
                        "(Apicurio: http://HOST:PORT/apis/ccompat/v7) instead of schemas/event.avsc")
    common(k)

    args = p.parse_args(argv)
    if args.count < 0:
        p.error("--count must be >= 0")
    if args.timeout <= 0:
        p.error("--timeout must be > 0")
    return args


def main(argv):
    args = parse_args(argv)
    try:
        decoder = RegistryDecoder(args.registry) if getattr(args, "registry", None) else Decoder()
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as e:
        log(f"cannot load {os.path.normpath(SCHEMA_PATH)}: {e}")
        return 1
    printer = Printer(args.pretty)
    try:
        if args.broker == "nats":
            ok = asyncio.run(consume_nats(args, printer, decoder))
            where = f"{args.url} stream {args.stream} subject {args.subject}"
        else:
            ok = consume_kafka(args, printer, decoder)
            where = f"{args.bootstrap} topic {args.topic}"
    except KeyboardInterrupt:
        return 130
    if decoder.failures:
        log(f"{decoder.failures} message(s) did not decode as {os.path.normpath(SCHEMA_PATH)}")
        return 2
    if not ok:
        return 1
    if args.count and printer.count < args.count:
        log(f"got {printer.count} of {args.count} message(s) from {where} within {args.timeout:g}s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
