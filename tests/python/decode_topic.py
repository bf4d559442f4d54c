"""Reads Avro records from a topic with Python's stock confluent-kafka client.

Proves the wire format and the development registry work with a client we
did not write: confluent-kafka's AvroDeserializer fetches the writer schema
from the registry by the id in each value's prefix. Prints one JSON object
per record and exits non-zero if fewer than --count records decode in time.

With --last-per-key, it prints only the last value of each key once --count
records are read, as a reader of a compacted topic (properties.latest, a
PropertyState per property) sees it.
"""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument(
        "--last-per-key",
        action="store_true",
        help="print only each key's last value (a compacted topic's view)",
    )
    args = parser.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": f"python-check-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    decoded = 0
    last = {}
    deadline = time.monotonic() + args.timeout
    try:
        while decoded < args.count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                print(f"consumer error: {message.error()}", file=sys.stderr)
                continue
            value = deserializer(
                message.value(), SerializationContext(message.topic(), MessageField.VALUE)
            )
            if args.last_per_key:
                last[message.key()] = value
            else:
                print(json.dumps(value, default=str, sort_keys=True))
            decoded += 1
    finally:
        consumer.close()
    for value in last.values():
        print(json.dumps(value, default=str, sort_keys=True))
    if decoded < args.count:
        print(f"decoded {decoded} of {args.count} records", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
