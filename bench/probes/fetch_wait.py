"""What a consumer's fetch.wait.max.ms costs on a broker: latency per hop, and
the broker's CPU while consumers wait.

Usage (a broker on BROKERS, e.g. one started by `scripts/stack.sh infra`; the
Python is the one scripts/test.sh installs, with confluent-kafka):

    python bench/probes/fetch_wait.py hop  BROKERS WAIT_MS [RECORDS]
    python bench/probes/fetch_wait.py idle BROKERS WAIT_MS BROKER_PID [SECONDS]

`hop` creates a one-partition topic, produces one record every 50 ms with the
pipeline's producer settings, and prints the produce-to-consume latency of a
consumer with the given fetch wait (p50, p90, p99, max).

`idle` subscribes three consumers (one per pipeline input topic, no records
arriving) with the given fetch wait and prints the broker process's CPU over
the window, read from /proc.

BENCHMARKS.md quotes both for nisshi 0.8.1.
"""

import sys
import threading
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def hop(brokers, wait_ms, records):
    topic = f"fetch-wait-probe-{int(time.time() * 1000)}"
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": brokers, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2})
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": topic,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": wait_ms})
    consumer.subscribe([topic])
    deadline = time.time() + 30
    while not consumer.assignment() and time.time() < deadline:
        consumer.poll(0.1)
    sent = {}

    def produce():
        for n in range(records):
            sent[n] = time.time()
            producer.produce(topic, str(n).encode())
            producer.poll(0)
            time.sleep(0.05)
        producer.flush()

    sender = threading.Thread(target=produce)
    sender.start()
    latency = {}
    deadline = time.time() + records * 0.05 + 60
    while len(latency) < records and time.time() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        n = int(message.value())
        latency[n] = time.time() - sent[n]
    sender.join()
    consumer.close()
    values = list(latency.values())
    print(f"fetch.wait.max.ms={wait_ms}: {len(values)} records, per hop "
          f"p50 {percentile(values, 0.5):.1f} ms, p90 {percentile(values, 0.9):.1f} ms, "
          f"p99 {percentile(values, 0.99):.1f} ms, max {max(values) * 1000:.1f} ms")


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def idle(brokers, wait_ms, pid, seconds):
    consumers = []
    for topic in ["webhooks.raw", "properties.normalized", "properties.events"]:
        consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"idle-{topic}-{time.time()}",
                             "auto.offset.reset": "latest", "enable.auto.commit": False,
                             "fetch.wait.max.ms": wait_ms})
        consumer.subscribe([topic])
        consumers.append(consumer)
    settle = time.time() + 8
    while time.time() < settle:
        for consumer in consumers:
            consumer.poll(0.05)
    before, started = cpu_ticks(pid), time.time()
    while time.time() - started < seconds:
        for consumer in consumers:
            consumer.poll(0.05)
    used = cpu_ticks(pid) - before
    for consumer in consumers:
        consumer.close()
    print(f"fetch.wait.max.ms={wait_ms}: three idle consumers, broker CPU "
          f"{used / seconds:.0f} % of a core over {seconds:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "hop":
        hop(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 200)
    elif len(sys.argv) >= 5 and sys.argv[1] == "idle":
        idle(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
             float(sys.argv[5]) if len(sys.argv) > 5 else 10.0)
    else:
        sys.exit(__doc__)
