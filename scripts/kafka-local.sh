#!/usr/bin/env bash
# kafka-local.sh — a single-node Apache Kafka 4.x broker (KRaft, broker+controller
# in one JVM) for development and integration tests, without Docker.
#
#   scripts/kafka-local.sh start [--sasl]   start (or reuse) the broker; the last
#                                           stdout line is the bootstrap address
#   scripts/kafka-local.sh stop             stop it and delete its data
#   scripts/kafka-local.sh restart          stop and start it again, keeping its data
#   scripts/kafka-local.sh status           exit 0 when it runs (prints the address)
#   scripts/kafka-local.sh logs             tail the broker log
#
# Needs Java 17+; on the first start also Maven (mvn), which fetches the broker
# and its runtime dependencies from Maven Central into a cache that later starts
# reuse. The readiness check uses kcat when installed, else Kafka's own
# BrokerApiVersionsCommand (slower: a JVM per try); the SASL listener is always
# checked with the Java client (see sasl_ready).
#
# Environment (all optional):
#   KAFKA_VERSION        org.apache.kafka:kafka_2.13 version     (4.4.0)
#   KAFKA_LOCAL_CACHE    jar cache; jars go to <cache>/<version>/libs
#                                                         ($HOME/.cache/fanout-kafka)
#   KAFKA_LOCAL_DIR      config, data, log and pid file   (/tmp/fanout-kafka-local)
#   KAFKA_HOST           listen/advertised host           (127.0.0.1)
#   KAFKA_PORT           PLAINTEXT listener               (9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener      (KAFKA_PORT+1)
#   KAFKA_SASL=1         also open a SASL_PLAINTEXT listener (same as --sasl)
#   KAFKA_SASL_PORT      SASL_PLAINTEXT listener          (9094)
#   KAFKA_SASL_USER / KAFKA_SASL_PASSWORD  SCRAM user, created for SCRAM-SHA-256
#                        and SCRAM-SHA-512                (fanout / fanout-secret)
#   KAFKA_HEAP_OPTS      JVM heap                         (-Xms256m -Xmx512m)
#   KAFKA_START_TIMEOUT  seconds to wait for readiness    (90)
#   KAFKA_EXTRA_PROPS    extra server.properties lines, newline separated
#   MVN                  Maven command                    (mvn)
#   KCAT                 kcat command; a missing one selects the Java check (kcat)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM="$SCRIPT_DIR/kafka-pom.xml"

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
CACHE_ROOT=${KAFKA_LOCAL_CACHE:-${HOME:-/tmp}/.cache/fanout-kafka}
LIBS="$CACHE_ROOT/$KAFKA_VERSION/libs"
DIR=${KAFKA_LOCAL_DIR:-/tmp/fanout-kafka-local}
HOST=${KAFKA_HOST:-127.0.0.1}
PORT=${KAFKA_PORT:-9092}
CPORT=${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
SASL=${KAFKA_SASL:-0}
SASL_PORT=${KAFKA_SASL_PORT:-9094}
SASL_USER=${KAFKA_SASL_USER:-fanout}
SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-fanout-secret}
HEAP=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
TIMEOUT=${KAFKA_START_TIMEOUT:-90}
MVN=${MVN:-mvn}
KCAT=${KCAT:-kcat}

PIDFILE="$DIR/kafka.pid"
LOGFILE="$DIR/kafka.log"
PROPS="$DIR/server.properties"
MODEFILE="$DIR/mode"
ADDR="$HOST:$PORT"

# start and stop delete DIR: refuse anything that is not a folder of its own
case ${DIR%/} in
"" | / | "$HOME" | /tmp | /root | /home | /usr | /var | /etc) echo "kafka-local: KAFKA_LOCAL_DIR=$DIR is not a safe folder to delete" >&2; exit 2 ;;
esac

log() { printf 'kafka-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------- helpers

port_open() { # host port
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

running_pid() { # prints the pid when our broker process is alive
	[[ -f $PIDFILE ]] || return 1
	local pid
	pid=$(<"$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# guard against a recycled pid
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
	echo "$pid"
}

check_java() {
	command -v java >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+; apt-get install -y openjdk-17-jre-headless)"
	local v
	v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
	[[ ${v%%.*} -ge 17 ]] 2>/dev/null || die "java $v is too old: the Kafka 4 broker needs Java 17+"
}

fetch_libs() {
	if [[ -f "$CACHE_ROOT/$KAFKA_VERSION/.complete" ]]; then
		return 0
	fi
	command -v "$MVN" >/dev/null || die "$MVN not found: Maven is needed once to fetch Kafka $KAFKA_VERSION (apt-get install -y maven)"
	[[ -f $POM ]] || die "missing $POM"
	mkdir -p "$CACHE_ROOT"
	# brokers of other KAFKA_LOCAL_DIRs share the cache: one fetch at a time,
	# and none replaces the jars under a broker that another one finished
	exec 8>"$CACHE_ROOT/$KAFKA_VERSION.lock"
	flock 8
	if [[ -f "$CACHE_ROOT/$KAFKA_VERSION/.complete" ]]; then
		exec 8>&-
		return 0
	fi
	log "fetching Kafka $KAFKA_VERSION and its dependencies with Maven into $CACHE_ROOT/$KAFKA_VERSION"
	local tmp
	tmp=$(mktemp -d "$CACHE_ROOT/.fetch.XXXXXX")
	# build.dir keeps Maven's target/ out of the source tree
	if ! "$MVN" -B -q -f "$POM" \
		-Dkafka.version="$KAFKA_VERSION" \
		-Dlibs.dir="$tmp/libs" \
		-Dbuild.dir="$tmp/target" \
		dependency:copy-dependencies >"$tmp/mvn.log" 2>&1; then
		tail -n 40 "$tmp/mvn.log" >&2
		rm -rf "$tmp"
		die "Maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
	fi
	[[ -f "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] || {
		rm -rf "$tmp"
		die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
	}
	rm -rf "$tmp/target" "${CACHE_ROOT:?}/${KAFKA_VERSION:?}"
	mkdir -p "$CACHE_ROOT/$KAFKA_VERSION"
	mv "$tmp/libs" "$LIBS"
	mv "$tmp/mvn.log" "$CACHE_ROOT/$KAFKA_VERSION/mvn.log"
	rmdir "$tmp" 2>/dev/null || rm -rf "$tmp"
	touch "$CACHE_ROOT/$KAFKA_VERSION/.complete"
	exec 8>&-
	log "cached $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1))"
}

# a Kafka cluster id: 16 random bytes, base64url without padding
cluster_id() {
	head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

write_config() {
	local listeners="PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT"
	local advertised="PLAINTEXT://$HOST:$PORT"
	local protomap="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
	if [[ $SASL == 1 ]]; then
		listeners+=",SASL_PLAINTEXT://$HOST:$SASL_PORT"
		advertised+=",SASL_PLAINTEXT://$HOST:$SASL_PORT"
		protomap+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
	fi
	cat >"$PROPS" <<EOF
# written by scripts/kafka-local.sh — single node, KRaft, for local use only
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
controller.listener.names=CONTROLLER
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protomap
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
	if [[ $SASL == 1 ]]; then
		cat >>"$PROPS" <<EOF
# SASL_PLAINTEXT with SCRAM; users come from the metadata log (format --add-scram)
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
	fi
	if [[ -n ${KAFKA_EXTRA_PROPS:-} ]]; then
		printf '# KAFKA_EXTRA_PROPS\n%s\n' "$KAFKA_EXTRA_PROPS" >>"$PROPS"
	fi

	cat >"$DIR/log4j2.properties" <<EOF
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF
	cat >"$DIR/tools-log4j2.properties" <<EOF
status = error
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m%n
rootLogger.level = error
rootLogger.appenderRef.err.ref = ERR
EOF
}

format_storage() {
	local args=(format --config "$PROPS" --cluster-id "$(cluster_id)")
	if [[ $SASL == 1 ]]; then
		args+=(--add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]")
		args+=(--add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]")
	fi
	if ! java -Xmx256m -Dlog4j2.configurationFile="$DIR/tools-log4j2.properties" \
		-cp "$LIBS/*" kafka.tools.StorageTool "${args[@]}" >"$DIR/format.log" 2>&1; then
		cat "$DIR/format.log" >&2
		die "formatting the storage in $DIR/data failed"
	fi
}

# metadata answered and broker 1 listed (Kafka leaves fenced brokers out)
broker_ready() {
	if command -v "$KCAT" >/dev/null; then
		"$KCAT" -b "$ADDR" -L -m 3 2>/dev/null | grep -q 'broker 1 at'
	else
		java -Xmx128m -Dlog4j2.configurationFile="$DIR/tools-log4j2.properties" \
			-cp "$LIBS/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
			--bootstrap-server "$ADDR" 2>/dev/null | grep -q "(id: 1 "
	fi
}

# A SCRAM-SHA-256 login on the SASL listener, with Kafka's own Java client:
# kcat cannot serve here, as librdkafka before 2.6.1 (Debian 12 ships 2.0.2)
# builds a SCRAM proof that Kafka 4 brokers reject ("invalid credentials").
sasl_ready() {
	cat >"$DIR/sasl-client.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SASL_USER" password="$SASL_PASSWORD";
EOF
	java -Xmx128m -Dlog4j2.configurationFile="$DIR/tools-log4j2.properties" \
		-cp "$LIBS/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
		--bootstrap-server "$HOST:$SASL_PORT" --command-config "$DIR/sasl-client.properties" \
		2>/dev/null | grep -q "(id: 1 "
}

stop_pid() { # pid
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 300; i++)); do # up to 30s for a controlled shutdown
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "broker $pid ignored SIGTERM for 30s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}

# ---------------------------------------------------------------- commands

cmd_start() {
	local pid mode="plain"
	[[ $SASL == 1 ]] && mode="sasl"

	if pid=$(running_pid); then
		local have
		have=$(cat "$MODEFILE" 2>/dev/null || echo plain)
		# a SASL broker also serves PLAINTEXT, so it satisfies a plain start
		if [[ $mode == sasl && $have != sasl ]]; then
			die "a broker (pid $pid, mode $have) already runs from $DIR; run '$0 stop' first to restart it in mode $mode"
		fi
		log "already running (pid $pid)"
		echo "$ADDR"
		return 0
	fi

	check_java
	# leftovers of a broker that died or was killed: start from scratch
	rm -rf "$DIR"

	local p
	for p in "$PORT" "$CPORT" $([[ $SASL == 1 ]] && echo "$SASL_PORT"); do
		if port_open "$HOST" "$p"; then
			die "port $HOST:$p is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT / KAFKA_SASL_PORT)"
		fi
	done

	fetch_libs
	mkdir -p "$DIR/data"
	echo "$mode" >"$MODEFILE"
	write_config
	format_storage

	launch
}

# launch starts the JVM on the configuration and data in $DIR and waits
# until it serves; start and restart share it.
launch() {
	local pid
	log "starting Kafka $KAFKA_VERSION on $ADDR (controller $HOST:$CPORT$([[ $SASL == 1 ]] && echo ", SASL_PLAINTEXT $HOST:$SASL_PORT")), log $LOGFILE"
	# setsid: own session, so a Ctrl-C in the calling terminal does not reach it;
	# every stream redirected, so $(kafka-local.sh start) does not hang;
	# fd 9 (the lock) closed, or the broker would hold the lock for its lifetime
	# shellcheck disable=SC2086
	setsid java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$DIR/log4j2.properties" \
		-Dkafka.logs.dir="$DIR" \
		-cp "$LIBS/*" kafka.Kafka "$PROPS" \
		</dev/null >"$LOGFILE" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$PIDFILE"

	local deadline=$((SECONDS + TIMEOUT))
	until port_open "$HOST" "$PORT" && broker_ready && { [[ $SASL != 1 ]] || sasl_ready; }; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "the broker exited during start-up; last lines of $LOGFILE:"
			tail -n 30 "$LOGFILE" >&2 || true
			rm -f "$PIDFILE"
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "the broker is not ready after ${TIMEOUT}s; last lines of $LOGFILE:"
			tail -n 30 "$LOGFILE" >&2 || true
			stop_pid "$pid"
			rm -f "$PIDFILE"
			exit 1
		fi
		sleep 0.3
	done
	log "ready (pid $pid)"
	echo "$ADDR"
}

cmd_stop() {
	local pid
	if pid=$(running_pid); then
		log "stopping broker (pid $pid)"
		stop_pid "$pid"
	else
		log "not running"
	fi
	rm -rf "$DIR"
}

# restart stops the broker and starts it again on the same ports with its
# data kept (a broker restart under a running client, for tests).
cmd_restart() {
	local pid
	pid=$(running_pid) || die "not running; use start"
	SASL=0
	[[ $(cat "$MODEFILE" 2>/dev/null) == sasl ]] && SASL=1
	log "restarting broker (pid $pid), keeping $DIR/data"
	stop_pid "$pid"
	launch
}

cmd_status() {
	local pid
	if pid=$(running_pid); then
		log "running (pid $pid, mode $(cat "$MODEFILE" 2>/dev/null || echo plain), dir $DIR)"
		echo "$ADDR"
		return 0
	fi
	log "not running"
	return 1
}

cmd_logs() {
	[[ -f $LOGFILE ]] || die "no log at $LOGFILE"
	tail -n "${1:-100}" "$LOGFILE"
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	start)
		while [[ $# -gt 0 ]]; do
			case $1 in
			--sasl) SASL=1 ;;
			*) die "unknown option for start: $1" ;;
			esac
			shift
		done
		;;
	stop | status | logs | restart) ;;
	-h | --help | help)
		usage
		return 0
		;;
	*)
		usage >&2
		return 2
		;;
	esac
	[[ $SASL == true || $SASL == yes ]] && SASL=1

	# one start/stop at a time for a given directory
	mkdir -p "$(dirname "$DIR")"
	exec 9>"$DIR.lock"
	flock 9

	"cmd_$cmd" "$@"
}

main "$@"
