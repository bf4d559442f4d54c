"""What consumers' fetch.min.bytes costs and saves on a broker under load:
the broker's CPU, the producer's acknowledgement latency and the
produce-to-consume latency, at a fixed produce rate with several consumer
groups reading the topic, as the pipeline's stages do.

Usage (a broker on BROKERS, e.g. one started by `scripts/stack.sh infra`; the
Python is the one scripts/test.sh installs, with confluent-kafka):

    python bench/probes/fetch_min_bytes.py BROKERS BROKER_PID MIN_BYTES \
        [--rate 1000] [--seconds 15] [--consumers 4] [--headers 3] [--wait-ms 100]

It creates a 3-partition topic, subscribes the consumer groups, warms the
producer up, then produces 1.6 KB records (about a normalized event) with
the pipeline's producer settings at the given rate, and prints the broker
process's CPU over the window (from /proc), the acknowledgement p50/p99 and
the produce-to-consume p50/p99 over every group. BENCHMARKS.md, section 8,
quotes it for nisshi 0.8.1 on `sqlite://`.
"""

import argparse
import os
import threading
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("brokers")
    parser.add_argument("broker_pid", type=int)
    parser.add_argument("min_bytes")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--headers", type=int, default=3)
    parser.add_argument("--wait-ms", default="100")
    args = parser.parse_args()

    topic = f"fetch-min-bytes-probe-{int(time.time() * 1000)}"
    admin = AdminClient({"bootstrap.servers": args.brokers})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result()

    stop = threading.Event()
    measuring = threading.Event()
    consumed_ms = []

    def consume(group):
        consumer = Consumer({"bootstrap.servers": args.brokers, "group.id": group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "fetch.wait.max.ms": args.wait_ms,
                             "fetch.min.bytes": args.min_bytes})
        consumer.subscribe([topic])
        while not stop.is_set():
            message = consumer.poll(0.1)
            if message is not None and message.error() is None and measuring.is_set():
                consumed_ms.append(time.time() * 1000 - message.timestamp()[1])
        consumer.close()

    readers = [threading.Thread(target=consume, args=(f"{topic}-{i}",))
               for i in range(args.consumers)]
    for reader in readers:
        reader.start()
    time.sleep(8)  # the groups' first rebalance

    producer = Producer({"bootstrap.servers": args.brokers, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    body = b"y" * 1600
    headers = [(f"h{i}", b"x" * 40) for i in range(args.headers)]
    producer.produce(topic, body)
    producer.flush()
    time.sleep(1)

    acknowledged_ms = []
    measuring.set()
    cpu_before, started = cpu_seconds(args.broker_pid), time.time()
    sent = 0
    while time.time() - started < args.seconds:
        due = int((time.time() - started) * args.rate)
        while sent < due:
            at = time.time()
            producer.produce(topic, body, key=str(sent % 50).encode(), headers=headers,
                             on_delivery=lambda _e, _m, at=at:
                             acknowledged_ms.append((time.time() - at) * 1000))
            sent += 1
        producer.poll(0)
        time.sleep(0.002)
    producer.flush()
    cpu_used, elapsed = cpu_seconds(args.broker_pid) - cpu_before, time.time() - started
    time.sleep(1)
    stop.set()
    for reader in readers:
        reader.join()
    print(f"fetch.min.bytes={args.min_bytes} fetch.wait.max.ms={args.wait_ms} "
          f"rate={args.rate}/s consumers={args.consumers} headers={args.headers}: "
          f"broker {100 * cpu_used / elapsed:.0f} % of a core; "
          f"ack p50 {percentile(acknowledged_ms, 0.5):.0f} / p99 {percentile(acknowledged_ms, 0.99):.0f} ms; "
          f"produce->consume p50 {percentile(consumed_ms, 0.5):.0f} / p99 {percentile(consumed_ms, 0.99):.0f} ms "
          f"({sent} sent, {len(consumed_ms)} consumed)")


if __name__ == "__main__":
    main()
