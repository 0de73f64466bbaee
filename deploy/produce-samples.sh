#!/usr/bin/env bash
# Writes sample events to the orders and payments topics, forever, for the
# `producer` service of docker-compose.yml (apache/kafka image tools).
#   BOOTSTRAP  broker                         (kafka:9092)
#   KAFKA_BIN  folder of the kafka-*.sh tools (/opt/kafka/bin)
#   RATE       events a second, per topic     (10)
#   COUNT      stop after this many events per topic; 0 = never (0)
#
# orders carry a header type=order.created|order.updated (the billing route
# takes only order.created) and content-type=application/json; the key is the
# customer, so one customer's events stay in order.
set -euo pipefail

BOOTSTRAP=${BOOTSTRAP:-kafka:9092}
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
RATE=${RATE:-10}
COUNT=${COUNT:-0}

# sleep between events: 1/RATE seconds, as a decimal for sleep(1)
pause=$(awk -v r="$RATE" 'BEGIN { if (r <= 0) r = 1; printf "%.3f", 1 / r }')

# lines for the console producer: headers<TAB>key<TAB>value
gen_orders() {
	local n=0 type
	while [ "$COUNT" = 0 ] || [ "$n" -lt "$COUNT" ]; do
		n=$((n + 1))
		if [ $((n % 3)) = 0 ]; then type=order.updated; else type=order.created; fi
		printf 'type:%s,content-type:application/json\tcustomer-%d\t{"order_id":%d,"customer":"customer-%d","amount_cents":%d,"at":"%s"}\n' \
			"$type" $((n % 50)) "$n" $((n % 50)) $((RANDOM % 100000)) "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		sleep "$pause"
	done
}

gen_payments() {
	local n=0
	while [ "$COUNT" = 0 ] || [ "$n" -lt "$COUNT" ]; do
		n=$((n + 1))
		printf 'type:payment.captured,content-type:application/json\taccount-%d\t{"payment_id":%d,"account":"account-%d","amount_cents":%d,"at":"%s"}\n' \
			$((n % 20)) "$n" $((n % 20)) $((RANDOM % 100000)) "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		sleep "$pause"
	done
}

produce() { # topic
	"$KAFKA_BIN/kafka-console-producer.sh" --bootstrap-server "$BOOTSTRAP" --topic "$1" \
		--reader-property parse.key=true \
		--reader-property parse.headers=true
}

echo "producing $RATE events/s to orders and payments on $BOOTSTRAP"
gen_orders | produce orders &
gen_payments | produce payments &
trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM INT
wait
