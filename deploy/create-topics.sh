#!/usr/bin/env bash
# Creates the topics of deploy/fanout.compose.yaml; run by the kafka-init
# service of docker-compose.yml with the apache/kafka image's tools.
#   BOOTSTRAP  broker to talk to            (kafka:9092)
#   KAFKA_BIN  folder of the kafka-*.sh tools (/opt/kafka/bin)
#   PARTITIONS partitions of the receiver topics (3)
set -euo pipefail

BOOTSTRAP=${BOOTSTRAP:-kafka:9092}
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
PARTITIONS=${PARTITIONS:-3}

topics() { "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "$@"; }

# the broker's healthcheck already passed; still, wait for it to answer
for i in $(seq 1 60); do
	if topics --list >/dev/null 2>&1; then break; fi
	[ "$i" = 60 ] && { echo "kafka at $BOOTSTRAP does not answer" >&2; exit 1; }
	sleep 2
done

create() { # topic partitions
	topics --create --if-not-exists --topic "$1" --partitions "$2" --replication-factor 1
}

# receivers, and the topic the orders/audit route writes to
create orders "$PARTITIONS"
create payments "$PARTITIONS"
create orders-audit "$PARTITIONS"
# dead-letter topics of the routes
for t in orders.dlq.billing orders.dlq.crm payments.dlq.ledger payments.dlq.fraud; do
	create "$t" 1
done

topics --describe --topic 'orders|payments|orders-audit|.*\.dlq\..*' 2>/dev/null | grep -E '^Topic:' || topics --list
echo "topics ready"
