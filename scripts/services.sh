#!/usr/bin/env bash
# Starts, stops and reports the real services that tests, load tests and
# the example configs use, on this machine, without docker.
#
#   scripts/services.sh up|down|status [SERVICE...]    (default: all)
#
#   SERVICE is redis, kafka or all (= redis kafka); several may be named,
#   e.g. `scripts/services.sh up kafka redis`.
#
# redis: Debian's redis-server (installed when missing) on 127.0.0.1 port
#   ${INCIDENTD_REDIS_PORT:-6390}, data, pidfile and log under
#   ${INCIDENTD_SERVICES_DIR:-$HOME/.cache/incidentd-services}/redis.
# kafka: Apache Kafka 4.1.1 (KAFKA_VERSION below) in KRaft mode, one node that is
#   both broker and controller, bound to 127.0.0.1 only:
#     broker (PLAINTEXT, what clients use)  ${INCIDENTD_KAFKA_PORT:-9192}
#     controller (KRaft quorum)              the next port (9193)
#   The jars come from Maven Central through the machine's mvn (Debian's
#   openjdk-17 and maven are installed when missing) into
#   ${INCIDENTD_SERVICES_DIR:-$HOME/.cache/incidentd-services}/kafka/lib;
#   config, cluster id, data (data/), pidfile and logs are beside them.
#   After start it creates, when missing, the topics the service uses by
#   default: alerts and incidentd.alerts.keyed (8 partitions each) and
#   incidentd.alerts.dead-letter (1 partition). Topics are not created
#   automatically on first use (auto.create.topics.enable=false): tests
#   create their own with the admin client.
#   INCIDENTD_KAFKA_HEAP overrides the broker heap (default
#   "-Xmx512m -Xms256m"; the machine has 2 cores and tests share it).
# pulsar: not supported yet (exit 2).
#
# `up` is idempotent: a running server started by this script is reused;
# Kafka's jars are fetched and its storage formatted only once. `down`
# stops only what this script started (the pid in its pidfile), so a
# server someone else runs is never touched; a broker that has not exited
# 30 s after SIGTERM gets SIGKILL.
set -euo pipefail

SERVICES_DIR="${INCIDENTD_SERVICES_DIR:-$HOME/.cache/incidentd-services}"
REDIS_PORT="${INCIDENTD_REDIS_PORT:-6390}"
REDIS_DIR="$SERVICES_DIR/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"
# How long to wait for Redis to answer or to exit, in seconds.
WAIT_SECONDS=20

# 4.1.1 is a 4.x release that Maven Central serves here with all of its
# dependencies.
KAFKA_VERSION=4.1.1
# Kafka's own poms pull in only slf4j-api; without a backend the broker logs
# nothing. log4j2 is what Kafka 4 ships with; slf4j 2 binds it through
# log4j-slf4j2-impl (named explicitly so Maven's nearest-wins cannot pick a
# slf4j 1.x api that would not find the binding).
KAFKA_SLF4J_VERSION=2.0.17
KAFKA_LOG4J_VERSION=2.24.3
KAFKA_PORT="${INCIDENTD_KAFKA_PORT:-9192}"
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
KAFKA_HEAP="${INCIDENTD_KAFKA_HEAP:--Xmx512m -Xms256m}"
KAFKA_DIR="$SERVICES_DIR/kafka"
KAFKA_LIB="$KAFKA_DIR/lib"
# Written last by the fetch, so a fetch cut short is redone, and a change
# of KAFKA_VERSION above fetches the new jars.
KAFKA_LIB_STAMP="$KAFKA_LIB/.complete-$KAFKA_VERSION"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CONFIG="$KAFKA_DIR/server.properties"
KAFKA_LOG4J_CONFIG="$KAFKA_DIR/log4j2.xml"
KAFKA_TOOLS_LOG4J_CONFIG="$KAFKA_DIR/tools-log4j2.xml"
KAFKA_TOOLS_CONFIG="$KAFKA_DIR/tools.properties"
KAFKA_CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
# kafka.log is the broker's log4j log (rolled by size); kafka.out gets the
# JVM's own stdout/stderr (crashes, errors before logging is set up).
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_OUT="$KAFKA_DIR/kafka.out"
# A cold JVM on 2 cores takes 10-20 s to become a broker; 90 s leaves room
# for a machine busy with a build.
KAFKA_START_SECONDS=90
# A broker flushes and closes its logs on SIGTERM; a large one may need a
# while, after that it gets SIGKILL.
KAFKA_STOP_SECONDS=30
# The topics the service uses by default: NAME:PARTITIONS.
KAFKA_TOPICS=(alerts:8 incidentd.alerts.keyed:8 incidentd.alerts.dead-letter:1)

usage() {
    echo "usage: $0 up|down|status [redis|kafka|all]..." >&2
    exit 64
}

# Prints the pid from the pidfile when that process is alive and is a
# redis-server; a stale pidfile (e.g. after a reboot) names nothing.
redis_pid() {
    [[ -f "$REDIS_PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$REDIS_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Pids are reused: check it is still our server, not an unrelated process.
    grep -q "redis-server" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

redis_install() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return
    fi
    echo "installing redis-server (Debian package)"
    # apt-cache is empty or stale until the first update.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}

redis_up() {
    redis_install
    mkdir -p "$REDIS_DIR"
    if pid="$(redis_pid)"; then
        echo "redis: already up (pid $pid, port $REDIS_PORT)"
    else
        # Append-only with an fsync per second: a test or load run survives a
        # restart of Redis; RDB snapshots are off, one persistence is enough.
        redis-server \
            --port "$REDIS_PORT" \
            --bind 127.0.0.1 \
            --protected-mode yes \
            --dir "$REDIS_DIR" \
            --pidfile "$REDIS_PIDFILE" \
            --logfile "$REDIS_LOG" \
            --daemonize yes \
            --appendonly yes \
            --appendfsync everysec \
            --save ""
    fi
    local waited=0
    until [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]; do
        if ((waited >= WAIT_SECONDS * 10)); then
            echo "redis: no PONG on 127.0.0.1:$REDIS_PORT after ${WAIT_SECONDS}s; last lines of $REDIS_LOG:" >&2
            tail -n 20 "$REDIS_LOG" >&2 || true
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "redis: up on 127.0.0.1:$REDIS_PORT (data in $REDIS_DIR)"
}

redis_down() {
    local pid
    if ! pid="$(redis_pid)"; then
        echo "redis: not running (nothing started by this script)"
        return
    fi
    kill "$pid"
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= WAIT_SECONDS * 10)); then
            echo "redis: pid $pid did not exit within ${WAIT_SECONDS}s; see $REDIS_LOG" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "redis: stopped (was pid $pid)"
}

redis_status() {
    local pid
    if pid="$(redis_pid)"; then
        echo "redis: up (pid $pid, port $REDIS_PORT)"
    else
        echo "redis: down (port $REDIS_PORT)"
    fi
}

# True when something accepts TCP connections on 127.0.0.1:$1. Bash's
# /dev/tcp needs no client tool and no JVM start.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints the pid from the pidfile when that process is alive and is our
# broker (a java running kafka.Kafka on our config); a stale pidfile
# names nothing.
kafka_pid() {
    [[ -f "$KAFKA_PIDFILE" ]] || return 1
    local pid cmdline
    pid="$(cat "$KAFKA_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Pids are reused: check it is still our broker, not an unrelated process.
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *" kafka.Kafka $KAFKA_CONFIG"* ]] || return 1
    echo "$pid"
}

kafka_install() {
    if command -v java >/dev/null && command -v mvn >/dev/null; then
        return
    fi
    echo "installing openjdk-17 and maven (Debian packages)"
    # apt-cache is empty or stale until the first update.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        openjdk-17-jdk-headless maven >/dev/null
}

# Copies Kafka's jars and their dependencies into $KAFKA_LIB with Maven,
# once: the stamp file says a previous fetch finished.
kafka_fetch() {
    [[ -f "$KAFKA_LIB_STAMP" ]] && return
    echo "kafka: fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIB"
    local build="$KAFKA_DIR/fetch"
    rm -rf "$build" "$KAFKA_LIB.tmp"
    mkdir -p "$build"
    # kafka_2.13 is the broker (kafka.Kafka, StorageTool); kafka-tools has
    # the CLIs (TopicCommand, ConsumerGroupCommand, ...).
    cat >"$build/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/services.sh: only used to fetch Kafka's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>incidentd.services</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>$KAFKA_SLF4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
    # Into a temporary folder first, so a fetch cut short leaves no lib/
    # that looks complete.
    if ! mvn -q -B -Dstyle.color=never -f "$build/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIB.tmp"; then
        echo "kafka: fetching the jars with Maven failed" >&2
        exit 1
    fi
    rm -rf "$KAFKA_LIB"
    mv "$KAFKA_LIB.tmp" "$KAFKA_LIB"
    touch "$KAFKA_LIB_STAMP"
    rm -rf "$build"
}

# Writes the broker's and the CLIs' config on every `up`, so a change here
# or of INCIDENTD_KAFKA_PORT takes effect on the next start.
kafka_configure() {
    # A static controller quorum (controller.quorum.voters) rather than
    # Kafka 4's dynamic one (format --standalone): the dynamic one writes
    # the controller's address into the formatted storage, so a later
    # change of INCIDENTD_KAFKA_PORT would leave the node unable to find
    # its own quorum. With one node nothing is lost.
    cat >"$KAFKA_CONFIG" <<PROPS
# Generated by scripts/services.sh on every start: edit the script instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA

# One node: every internal topic has one replica, or it is never created.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Fewer than the default 50 consumer-offsets partitions: the first consumer
# group of a fresh broker waits for all of them to be created.
offsets.topic.num.partitions=8

# Tests should not wait 3 s for a consumer group's first rebalance.
group.initial.rebalance.delay.ms=0
num.partitions=8
# A typo in a topic name fails loudly instead of creating a new topic;
# tests create their topics with the admin client.
auto.create.topics.enable=false
delete.topic.enable=true

# Fewer threads than the defaults: the machine has 2 cores.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
PROPS

    cat >"$KAFKA_LOG4J_CONFIG" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/services.sh: the broker's logging. -->
<Configuration status="warn">
  <Appenders>
    <RollingFile name="file" fileName="$KAFKA_LOG" filePattern="$KAFKA_LOG.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="file"/></Root>
    <!-- Per-request and per-partition state lines: noise for a test broker. -->
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Logger name="kafka.log.LogCleaner" level="warn"/>
  </Loggers>
</Configuration>
XML

    # The readiness check retries every half second: a try that gets no
    # answer should give up long before the admin client's default 60 s.
    cat >"$KAFKA_TOOLS_CONFIG" <<'PROPS'
# Generated by scripts/services.sh: client settings of its readiness check.
request.timeout.ms=10000
default.api.timeout.ms=15000
PROPS

    # The CLIs print only warnings, to stderr, so their output stays readable.
    cat >"$KAFKA_TOOLS_LOG4J_CONFIG" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/services.sh: logging of the Kafka CLIs. -->
<Configuration status="warn">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="warn"><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
XML
}

# Runs a Kafka CLI class with the fetched jars: kafka_java CLASS ARGS...
# A short-lived JVM: C1 only, serial GC and a small heap start fastest.
# The timeout keeps a CLI that cannot reach the broker from hanging `up`.
kafka_java() {
    timeout 60 java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J_CONFIG" \
        -cp "$KAFKA_LIB/*" "$@"
}

# Formats the storage once. The cluster id is kept in a file, so storage
# deleted by hand is formatted again under the same id.
kafka_format() {
    [[ -f "$KAFKA_DATA/meta.properties" ]] && return
    local cluster_id
    if [[ -s "$KAFKA_CLUSTER_ID_FILE" ]]; then
        cluster_id="$(cat "$KAFKA_CLUSTER_ID_FILE")"
    else
        cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid)"
        echo "$cluster_id" >"$KAFKA_CLUSTER_ID_FILE"
    fi
    echo "kafka: formatting storage in $KAFKA_DATA (cluster id $cluster_id)"
    kafka_java kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$KAFKA_CONFIG" >/dev/null
}

# Waits until the broker lists topics, printing the list; exits 1 with the
# end of the logs when it does not within KAFKA_START_SECONDS.
kafka_wait() {
    local pid="$1" deadline=$((SECONDS + KAFKA_START_SECONDS)) topics
    while true; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "kafka: broker (pid $pid) exited while starting" >&2
            kafka_show_logs
            exit 1
        fi
        # A port check first: a JVM start per try only once the broker listens.
        if port_open "$KAFKA_PORT" &&
            topics="$(kafka_java org.apache.kafka.tools.TopicCommand \
                --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
                --command-config "$KAFKA_TOOLS_CONFIG" --list 2>/dev/null)"; then
            printf '%s\n' "$topics"
            return
        fi
        if ((SECONDS >= deadline)); then
            echo "kafka: broker on 127.0.0.1:$KAFKA_PORT did not answer within ${KAFKA_START_SECONDS}s" >&2
            kafka_show_logs
            exit 1
        fi
        sleep 0.5
    done
}

kafka_show_logs() {
    echo "last lines of $KAFKA_LOG:" >&2
    tail -n 30 "$KAFKA_LOG" >&2 || true
    echo "last lines of $KAFKA_OUT:" >&2
    tail -n 10 "$KAFKA_OUT" >&2 || true
}

kafka_up() {
    kafka_install
    mkdir -p "$KAFKA_DIR"
    local pid started=0
    if pid="$(kafka_pid)"; then
        echo "kafka: already up (pid $pid, port $KAFKA_PORT)"
    else
        # Something else on our port would take our clients; do not start a
        # broker that cannot bind, say so.
        if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
            echo "kafka: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is in use by a process this script did not start" >&2
            exit 1
        fi
        kafka_fetch
        kafka_configure
        kafka_format
        # setsid + nohup: the broker outlives this script and its terminal.
        # G1 with a short pause target is what kafka-server-start.sh uses.
        # shellcheck disable=SC2086 # KAFKA_HEAP is several options.
        setsid nohup java $KAFKA_HEAP \
            -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$KAFKA_LOG4J_CONFIG" \
            -Dkafka.logs.dir="$KAFKA_DIR" \
            -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_CONFIG" \
            >"$KAFKA_OUT" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$KAFKA_PIDFILE"
        started=1
    fi
    local topics
    topics="$(kafka_wait "$pid")"
    # One JVM start per missing topic only; --if-not-exists still guards a
    # race with a test creating the same topic.
    local entry name partitions
    for entry in "${KAFKA_TOPICS[@]}"; do
        name="${entry%%:*}"
        partitions="${entry##*:}"
        if ! grep -qxF "$name" <<<"$topics"; then
            # TopicCommand warns about every name with a '.', which all of
            # ours have on purpose; the warning would only hide real output.
            kafka_java org.apache.kafka.tools.TopicCommand \
                --bootstrap-server "127.0.0.1:$KAFKA_PORT" --create --if-not-exists \
                --topic "$name" --partitions "$partitions" --replication-factor 1 |
                sed '/^WARNING: Due to limitations in metric names/d'
        fi
    done
    if ((started)); then
        echo "kafka: up on 127.0.0.1:$KAFKA_PORT (pid $pid, controller port $KAFKA_CONTROLLER_PORT, data in $KAFKA_DATA)"
    fi
}

kafka_down() {
    local pid
    if ! pid="$(kafka_pid)"; then
        echo "kafka: not running (nothing started by this script)"
        return
    fi
    kill "$pid"
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= KAFKA_STOP_SECONDS * 10)); then
            echo "kafka: pid $pid did not exit within ${KAFKA_STOP_SECONDS}s; killing it (see $KAFKA_LOG)" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    # The broker does not remove its pidfile, unlike redis-server.
    rm -f "$KAFKA_PIDFILE"
    echo "kafka: stopped (was pid $pid)"
}

kafka_status() {
    local pid
    if pid="$(kafka_pid)"; then
        if port_open "$KAFKA_PORT"; then
            echo "kafka: up (pid $pid, port $KAFKA_PORT)"
        else
            echo "kafka: starting (pid $pid, port $KAFKA_PORT not listening yet)"
        fi
    else
        echo "kafka: down (port $KAFKA_PORT)"
    fi
}

action="${1:-}"
case "$action" in
up | down | status) ;;
*) usage ;;
esac
shift
(($# > 0)) || set -- all
# Every name is checked before anything starts or stops, so a typo or an
# unsupported service does not leave half of the list done.
services=()
for service in "$@"; do
    case "$service" in
    redis | kafka) services+=("$service") ;;
    all) services+=(redis kafka) ;;
    pulsar)
        echo "$service: not supported yet" >&2
        exit 2
        ;;
    *) usage ;;
    esac
done
for service in "${services[@]}"; do
    "${service}_$action"
done
