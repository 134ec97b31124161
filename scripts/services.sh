#!/usr/bin/env bash
# Starts, stops and reports the real services that tests, load tests and
# the example configs use, on this machine, without docker.
#
#   scripts/services.sh up|down|status [SERVICE...]    (default: all)
#   scripts/services.sh kafka-topics ARGS...
#
#   SERVICE is redis, kafka, pulsar or all (= redis kafka pulsar); several
#   may be named, e.g. `scripts/services.sh up kafka redis`.
#   kafka-topics runs Kafka's topic tool (kafka-topics.sh's options, e.g.
#   `--create --topic T --partitions 8 --replication-factor 1`, `--delete
#   --topic 'run\..*'`) against the broker this script starts.
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
#   default: alerts, incidentd.alerts.keyed and incidentd.incident-events
#   (8 partitions each) and incidentd.alerts.dead-letter (1 partition). Topics are not created
#   automatically on first use (auto.create.topics.enable=false): tests
#   create their own with the admin client.
#   INCIDENTD_KAFKA_HEAP overrides the broker heap (default
#   "-Xmx512m -Xms256m"; the machine has 2 cores and tests share it).
# pulsar: Apache Pulsar 4.0.7 (PULSAR_VERSION below) standalone: one broker
#   and one bookie in one JVM, metadata in RocksDB (no ZooKeeper), no
#   functions worker and no stream storage, bound to 127.0.0.1 only:
#     broker (pulsar://, what clients use)  ${INCIDENTD_PULSAR_PORT:-6660}
#     admin and REST API (http://)          ${INCIDENTD_PULSAR_HTTP_PORT:-6680}
#     bookie (BookKeeper)                   ${INCIDENTD_PULSAR_BOOKIE_PORT:-6682}
#   The jars (about 235 MB) come from Maven Central through mvn, like
#   Kafka's, into ${INCIDENTD_SERVICES_DIR:-$HOME/.cache/incidentd-services}/pulsar/lib;
#   config (standalone.conf), data (data/), pidfile and logs are beside
#   them. After start it creates, when missing, the topic
#   persistent://public/default/incident-events. Topics are also created
#   on first use (allowAutoTopicCreation=true, non-partitioned).
#   INCIDENTD_PULSAR_HEAP overrides the JVM's memory options (default
#   "-Xms256m -Xmx768m -XX:MaxDirectMemorySize=512m"; the broker's RSS is
#   about 350 MB when idle).
#
# `up` is idempotent: a running server started by this script is reused;
# Kafka's and Pulsar's jars are fetched and Kafka's storage formatted only
# once. With INCIDENTD_SERVICES_FRESH=1, a server that `up` starts (not one
# already running) first loses its data: scripts/test.sh asks for that,
# since every test makes its own topics and keys, and a broker holding the
# thousands of topics that many test runs leave behind takes minutes to
# load them at its next start. `down` stops only what this script started (the pid in its
# pidfile), so a server someone else runs is never touched; a broker that
# has not exited 30 s after SIGTERM gets SIGKILL.
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
KAFKA_TOPICS=(alerts:8 incidentd.alerts.keyed:8 incidentd.alerts.dead-letter:1 incidentd.incident-events:8)

# 4.0.7 is the newest 4.0 (LTS) release that Maven Central serves here with
# all of its dependencies: 4.0.8 lacks org.apache.pulsar:jetcd-core-shaded
# and org.apache.pulsar:pulsar-opentelemetry, 4.1.x and 3.x lack
# pulsar-broker itself.
PULSAR_VERSION=4.0.7
# Pulsar's poms pull in log4j-slf4j2-impl 2.23.1 but, by Maven's
# nearest-wins, log4j-core 2.18.0, which that binding does not work with;
# 2.23.1 is what Pulsar 4.0 ships with.
PULSAR_LOG4J_VERSION=2.23.1
PULSAR_PORT="${INCIDENTD_PULSAR_PORT:-6660}"
PULSAR_HTTP_PORT="${INCIDENTD_PULSAR_HTTP_PORT:-6680}"
PULSAR_BOOKIE_PORT="${INCIDENTD_PULSAR_BOOKIE_PORT:-6682}"
PULSAR_HEAP="${INCIDENTD_PULSAR_HEAP:--Xms256m -Xmx768m -XX:MaxDirectMemorySize=512m}"
PULSAR_DIR="$SERVICES_DIR/pulsar"
PULSAR_LIB="$PULSAR_DIR/lib"
# Written last by the fetch, like Kafka's.
PULSAR_LIB_STAMP="$PULSAR_LIB/.complete-$PULSAR_VERSION"
PULSAR_DATA="$PULSAR_DIR/data"
PULSAR_CONFIG="$PULSAR_DIR/standalone.conf"
PULSAR_LOG4J_CONFIG="$PULSAR_DIR/log4j2.xml"
PULSAR_PIDFILE="$PULSAR_DIR/pulsar.pid"
# pulsar.log is the broker's and bookie's log4j log; pulsar.out gets the
# JVM's own stdout/stderr.
PULSAR_LOG="$PULSAR_DIR/pulsar.log"
PULSAR_OUT="$PULSAR_DIR/pulsar.out"
PULSAR_ADMIN="http://127.0.0.1:$PULSAR_HTTP_PORT/admin/v2"
# A broker and a bookie in one JVM: 10-20 s on 2 idle cores, much more on a
# machine busy with a build.
PULSAR_START_SECONDS=180
PULSAR_STOP_SECONDS=30
# The namespace and the topics the service uses by default.
PULSAR_NAMESPACE=public/default
PULSAR_TOPICS=(incident-events)

# Empties DIR before NAME starts when INCIDENTD_SERVICES_FRESH=1 (see the
# top of this file): fresh_data NAME DIR.
fresh_data() {
    [[ "${INCIDENTD_SERVICES_FRESH:-0}" == 1 ]] || return 0
    if [[ -e "$2" ]]; then
        echo "$1: starting with empty data (INCIDENTD_SERVICES_FRESH=1): removing $2"
        rm -rf "$2"
    fi
}

usage() {
    echo "usage: $0 up|down|status [redis|kafka|pulsar|all]..." >&2
    echo "       $0 kafka-topics ARGS..." >&2
    exit 64
}

# Prints the pid in PIDFILE when that process is alive and its command line
# (arguments joined by spaces) contains MATCH: owned_pid PIDFILE MATCH.
# A stale pidfile (e.g. after a reboot) names nothing, and since pids are
# reused, MATCH makes sure it is still our server, not an unrelated process.
owned_pid() {
    local pidfile="$1" match="$2" pid cmdline
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$match"* ]] || return 1
    echo "$pid"
}

# Runs COMMAND every 0.1 s until it succeeds, for at most SECONDS; false
# when it never did: wait_for SECONDS COMMAND...
wait_for() {
    local tries=$(($1 * 10))
    shift
    until "$@"; do
        ((tries-- > 0)) || return 1
        sleep 0.1
    done
}

# True once pid $1 has exited.
pid_gone() {
    ! kill -0 "$1" 2>/dev/null
}

# Stops what this script started: service_down NAME PIDFILE SECONDS LOG
# ON_TIMEOUT. NAME_pid says whether the pidfile names our server; anything
# else is never touched. It gets SIGTERM and SECONDS to exit; then
# ON_TIMEOUT decides: "kill" (the JVMs: a broker stuck flushing its logs
# still goes, with SIGKILL) or "fail" (redis-server exits at once unless
# something is wrong, which someone should look at: exit 1).
service_down() {
    local name="$1" pidfile="$2" seconds="$3" log="$4" on_timeout="$5" pid
    if ! pid="$("${name}_pid")"; then
        echo "$name: not running (nothing started by this script)"
        return
    fi
    kill "$pid"
    if ! wait_for "$seconds" pid_gone "$pid"; then
        if [[ "$on_timeout" != kill ]]; then
            echo "$name: pid $pid did not exit within ${seconds}s; see $log" >&2
            exit 1
        fi
        echo "$name: pid $pid did not exit within ${seconds}s; killing it (see $log)" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # The JVMs do not remove their pidfile; redis-server has removed its own.
    rm -f "$pidfile"
    echo "$name: stopped (was pid $pid)"
}

# Prints the pid of the redis-server this script started, if it runs.
redis_pid() {
    owned_pid "$REDIS_PIDFILE" redis-server
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

redis_pong() {
    [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
}

redis_up() {
    redis_install
    mkdir -p "$REDIS_DIR"
    local pid
    if pid="$(redis_pid)"; then
        echo "redis: already up (pid $pid, port $REDIS_PORT)"
    else
        # Redis 7 keeps its append-only files in appendonlydir.
        fresh_data redis "$REDIS_DIR/appendonlydir"
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
    if ! wait_for "$WAIT_SECONDS" redis_pong; then
        echo "redis: no PONG on 127.0.0.1:$REDIS_PORT after ${WAIT_SECONDS}s; last lines of $REDIS_LOG:" >&2
        tail -n 20 "$REDIS_LOG" >&2 || true
        exit 1
    fi
    echo "redis: up on 127.0.0.1:$REDIS_PORT (data in $REDIS_DIR)"
}

redis_down() {
    service_down redis "$REDIS_PIDFILE" "$WAIT_SECONDS" "$REDIS_LOG" fail
}

# No port check, unlike the JVMs': `up` waits for redis-server's PONG.
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

# Exits 1 when something listens on one of the PORTs: ports_free NAME
# PORT... Called before a start: a process this script did not start would
# take our clients or make the start fail half way; do not start, say so.
ports_free() {
    local name="$1" port
    shift
    for port in "$@"; do
        if port_open "$port"; then
            echo "$name: port $port is in use by a process this script did not start" >&2
            exit 1
        fi
    done
}

# Prints the pid of the broker this script started, if it runs (a java
# running kafka.Kafka on our config).
kafka_pid() {
    owned_pid "$KAFKA_PIDFILE" " kafka.Kafka $KAFKA_CONFIG"
}

# Kafka and Pulsar both run on the JVM, with jars fetched by Maven.
java_install() {
    if command -v java >/dev/null && command -v mvn >/dev/null; then
        return
    fi
    echo "installing openjdk-17 and maven (Debian packages)"
    # apt-cache is empty or stale until the first update.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        openjdk-17-jdk-headless maven >/dev/null
}

# Copies jars and their dependencies into LIB with Maven, once: the STAMP
# file (in LIB, named after the version) says a previous fetch finished, so
# a fetch cut short is redone and a new version fetches the new jars.
#   maven_fetch NAME WHAT DIR LIB STAMP GROUP:ARTIFACT:VERSION...
# WHAT names the jars in messages; the generated pom, in DIR/fetch, lists
# the artifacts in the order given (Maven's nearest-wins picks, among
# dependencies at the same depth, the one declared first).
maven_fetch() {
    local name="$1" what="$2" dir="$3" lib="$4" stamp="$5"
    shift 5
    [[ -f "$stamp" ]] && return
    echo "$name: fetching $what jars with Maven into $lib"
    local build="$dir/fetch" artifact group id version
    rm -rf "$build" "$lib.tmp"
    mkdir -p "$build"
    {
        cat <<POM
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/services.sh: only used to fetch $what jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>incidentd.services</groupId>
  <artifactId>$name-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
POM
        for artifact in "$@"; do
            IFS=: read -r group id version <<<"$artifact"
            cat <<POM
    <dependency>
      <groupId>$group</groupId>
      <artifactId>$id</artifactId>
      <version>$version</version>
    </dependency>
POM
        done
        cat <<'POM'
  </dependencies>
</project>
POM
    } >"$build/pom.xml"
    # Into a temporary folder first, so a fetch cut short leaves no lib/
    # that looks complete.
    if ! mvn -q -B -Dstyle.color=never -f "$build/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$lib.tmp"; then
        echo "$name: fetching the jars with Maven failed" >&2
        exit 1
    fi
    rm -rf "$lib"
    mv "$lib.tmp" "$lib"
    touch "$stamp"
    rm -rf "$build"
}

# Starts COMMAND in the background in folder CWD, its stdout and stderr
# into OUT, and writes its pid to PIDFILE: detach PIDFILE OUT CWD COMMAND...
# setsid + nohup: the server outlives this script and its terminal. The
# subshell execs, so its pid ($!) is the server's (setsid does not fork:
# without job control the subshell leads no process group).
detach() {
    local pidfile="$1" out="$2" cwd="$3"
    shift 3
    (
        cd "$cwd"
        exec setsid nohup "$@"
    ) >"$out" 2>&1 </dev/null &
    echo "$!" >"$pidfile"
}

# Shows why a JVM did not start: the end of its log4j log LOG and of its
# own stdout/stderr OUT (crashes, errors before logging is set up).
tail_logs() {
    echo "last lines of $1:" >&2
    tail -n 30 "$1" >&2 || true
    echo "last lines of $2:" >&2
    tail -n 10 "$2" >&2 || true
}

# Waits until a starting JVM answers: java_wait NAME PID SECONDS WHAT LOG
# OUT PROBE... PROBE runs every half second (it may start a JVM itself)
# until it succeeds; what it prints then is printed. Exits 1 with the end
# of LOG and OUT when PID exits first or WHAT does not answer within
# SECONDS.
java_wait() {
    local name="$1" pid="$2" seconds="$3" what="$4" log="$5" out="$6"
    local deadline=$((SECONDS + seconds))
    shift 6
    while true; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name: broker (pid $pid) exited while starting" >&2
            tail_logs "$log" "$out"
            exit 1
        fi
        if "$@"; then
            return
        fi
        if ((SECONDS >= deadline)); then
            echo "$name: $what did not answer within ${seconds}s" >&2
            tail_logs "$log" "$out"
            exit 1
        fi
        sleep 0.5
    done
}

# Reports a JVM server: java_status NAME PORT [ADMIN_PORT]. Its pid exists
# well before it listens, so it is "starting" until every port accepts
# connections.
java_status() {
    local name="$1" pid port
    if ! pid="$("${name}_pid")"; then
        echo "$name: down (port $2)"
        return
    fi
    for port in "${@:2}"; do
        if ! port_open "$port"; then
            echo "$name: starting (pid $pid, port $port not listening yet)"
            return
        fi
    done
    echo "$name: up (pid $pid, port $2${3:+, admin port $3})"
}

# Writes the log4j2 config of a JVM server to FILE: info and up into LOG,
# rolled at 20 MB with 3 old files kept, so a long-lived test broker does
# not fill the disk. LOGGERS are <Logger> lines that quiet its noisiest
# classes: log4j_file_config FILE LOG WHOSE LOGGERS.
log4j_file_config() {
    cat >"$1" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/services.sh: $3 logging. -->
<Configuration status="warn">
  <Appenders>
    <RollingFile name="file" fileName="$2" filePattern="$2.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="file"/></Root>
$4
  </Loggers>
</Configuration>
XML
}

# Copies Kafka's jars into $KAFKA_LIB, once. kafka_2.13 is the broker
# (kafka.Kafka, StorageTool); kafka-tools has the CLIs (TopicCommand,
# ConsumerGroupCommand, ...); slf4j and log4j: see KAFKA_SLF4J_VERSION.
kafka_fetch() {
    maven_fetch kafka "Kafka $KAFKA_VERSION" "$KAFKA_DIR" "$KAFKA_LIB" "$KAFKA_LIB_STAMP" \
        "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" \
        "org.apache.kafka:kafka-tools:$KAFKA_VERSION" \
        "org.slf4j:slf4j-api:$KAFKA_SLF4J_VERSION" \
        "org.apache.logging.log4j:log4j-slf4j2-impl:$KAFKA_LOG4J_VERSION" \
        "org.apache.logging.log4j:log4j-core:$KAFKA_LOG4J_VERSION"
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

    log4j_file_config "$KAFKA_LOG4J_CONFIG" "$KAFKA_LOG" "the broker's" \
        '    <!-- Per-request and per-partition state lines: noise for a test broker. -->
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Logger name="kafka.log.LogCleaner" level="warn"/>'

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

# Prints the broker's topics when it lists them (java_wait's probe).
kafka_ready() {
    local topics
    # A port check first: a JVM start per try only once the broker listens.
    port_open "$KAFKA_PORT" &&
        topics="$(kafka_java org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
            --command-config "$KAFKA_TOOLS_CONFIG" --list 2>/dev/null)" &&
        printf '%s\n' "$topics"
}

kafka_up() {
    java_install
    mkdir -p "$KAFKA_DIR"
    local pid started=0
    if pid="$(kafka_pid)"; then
        echo "kafka: already up (pid $pid, port $KAFKA_PORT)"
    else
        ports_free kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
        kafka_fetch
        kafka_configure
        fresh_data kafka "$KAFKA_DATA"
        kafka_format
        # G1 with a short pause target is what kafka-server-start.sh uses.
        # The broker needs no particular working folder: it keeps the
        # caller's.
        # shellcheck disable=SC2086 # KAFKA_HEAP is several options.
        detach "$KAFKA_PIDFILE" "$KAFKA_OUT" "$PWD" java $KAFKA_HEAP \
            -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$KAFKA_LOG4J_CONFIG" \
            -Dkafka.logs.dir="$KAFKA_DIR" \
            -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_CONFIG"
        pid="$(cat "$KAFKA_PIDFILE")"
        started=1
    fi
    local topics
    topics="$(java_wait kafka "$pid" "$KAFKA_START_SECONDS" \
        "broker on 127.0.0.1:$KAFKA_PORT" "$KAFKA_LOG" "$KAFKA_OUT" kafka_ready)"
    # One JVM start per missing topic only; --if-not-exists still guards a
    # race with a test creating the same topic.
    local entry name partitions
    for entry in "${KAFKA_TOPICS[@]}"; do
        name="${entry%%:*}"
        partitions="${entry##*:}"
        if ! grep -qxF "$name" <<<"$topics"; then
            kafka_topics --create --if-not-exists \
                --topic "$name" --partitions "$partitions" --replication-factor 1
        fi
    done
    if ((started)); then
        echo "kafka: up on 127.0.0.1:$KAFKA_PORT (pid $pid, controller port $KAFKA_CONTROLLER_PORT, data in $KAFKA_DATA)"
    fi
}

# Runs Kafka's topic tool against our broker: kafka_topics ARGS...
kafka_topics() {
    # TopicCommand warns about every name with a '.', which all of ours have
    # on purpose; the warning would only hide real output.
    kafka_java org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "127.0.0.1:$KAFKA_PORT" "$@" |
        sed '/^WARNING: Due to limitations in metric names/d'
}

# A broker flushes and closes its logs on SIGTERM; one that has not exited
# after KAFKA_STOP_SECONDS gets SIGKILL.
kafka_down() {
    service_down kafka "$KAFKA_PIDFILE" "$KAFKA_STOP_SECONDS" "$KAFKA_LOG" kill
}

kafka_status() {
    java_status kafka "$KAFKA_PORT"
}

# Prints the pid of the Pulsar this script started, if it runs (a java
# running PulsarStandaloneStarter on our config).
pulsar_pid() {
    owned_pid "$PULSAR_PIDFILE" " org.apache.pulsar.PulsarStandaloneStarter --config $PULSAR_CONFIG "
}

# Copies Pulsar's jars into $PULSAR_LIB, once. pulsar-broker has
# PulsarStandaloneStarter and brings the bookie (bookkeeper-server), the
# metadata store (RocksDB) and the client; log4j: see PULSAR_LOG4J_VERSION.
pulsar_fetch() {
    maven_fetch pulsar "Pulsar $PULSAR_VERSION" "$PULSAR_DIR" "$PULSAR_LIB" "$PULSAR_LIB_STAMP" \
        "org.apache.pulsar:pulsar-broker:$PULSAR_VERSION" \
        "org.apache.logging.log4j:log4j-api:$PULSAR_LOG4J_VERSION" \
        "org.apache.logging.log4j:log4j-core:$PULSAR_LOG4J_VERSION" \
        "org.apache.logging.log4j:log4j-slf4j2-impl:$PULSAR_LOG4J_VERSION"
}

# Writes the broker's config and logging on every `up`, so a change here or
# of the ports takes effect on the next start.
pulsar_configure() {
    # PulsarStandalone reads this file twice: as the broker's config and as
    # the bookie's (BookKeeper's ServerConfiguration), so both kinds of keys
    # are here. The metadata store (RocksDB, not ZooKeeper) is given on the
    # command line: standalone parses a metadataStoreUrl set here as a
    # ZooKeeper host:port.
    cat >"$PULSAR_CONFIG" <<PROPS
# Generated by scripts/services.sh on every start: edit the script instead.
clusterName=standalone
bindAddress=127.0.0.1
advertisedAddress=127.0.0.1
brokerServicePort=$PULSAR_PORT
webServicePort=$PULSAR_HTTP_PORT
functionsWorkerEnabled=false
webSocketServiceEnabled=false
transactionCoordinatorEnabled=false

# One bookie: every ledger has one copy.
managedLedgerDefaultEnsembleSize=1
managedLedgerDefaultWriteQuorum=1
managedLedgerDefaultAckQuorum=1

# Producers and consumers may name a topic that does not exist yet, as with
# Pulsar's own standalone.conf; a topic is not deleted when it has been idle
# a minute without subscriptions (the broker default), so the topics created
# by this script stay.
allowAutoTopicCreation=true
allowAutoTopicCreationType=non-partitioned
brokerDeleteInactiveTopicsEnabled=false

# The bookie. Its port is --bookkeeper-port, used only with
# allowEphemeralPorts=true (otherwise standalone picks a random one);
# listeningInterface=lo binds it to 127.0.0.1 instead of every interface.
listeningInterface=lo
allowLoopback=true
allowEphemeralPorts=true
# No fsync per entry (a test broker), small caches (the machine is shared),
# read-only only when the disk is nearly full.
journalSyncData=false
dbStorage_writeCacheMaxSizeMb=32
dbStorage_readAheadCacheMaxSizeMb=32
diskUsageThreshold=0.99
diskUsageWarnThreshold=0.95

# A consumer at the end of a topic is told of new entries at once rather
# than polling for them every 10 ms (the default): the event topics'
# consumers read what incidentd just published. Pulsar's advice for
# latency-sensitive consumption; measured in benches/README.md.
managedLedgerNewEntriesCheckDelayInMillis=0

# Fewer threads than the defaults: the machine has 2 cores.
numIOThreads=2
numOrderedExecutorThreads=2
bookkeeperClientNumIoThreads=2
PROPS

    log4j_file_config "$PULSAR_LOG4J_CONFIG" "$PULSAR_LOG" "the broker's and bookie's" \
        '    <!-- One bookie has no racks to place ledgers on: a warning per ledger. -->
    <Logger name="org.apache.bookkeeper.client.TopologyAwareEnsemblePlacementPolicy" level="error"/>'
}

# GET on the admin API: pulsar_admin_get PATH. The timeout keeps a broker
# that accepts but does not answer from hanging `up`.
pulsar_admin_get() {
    curl -sf --max-time 10 "$PULSAR_ADMIN/$1"
}

# PUT on the admin API: pulsar_admin_put PATH [JSON]. Created (2xx) and
# "already exists" (409, a race with a client or with standalone's own
# start-up) both succeed.
pulsar_admin_put() {
    local code
    if (($# > 1)); then
        code="$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -X PUT \
            -H 'content-type: application/json' -d "$2" "$PULSAR_ADMIN/$1")" || true
    else
        code="$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -X PUT "$PULSAR_ADMIN/$1")" || true
    fi
    case "$code" in
    2?? | 409) return 0 ;;
    *)
        echo "pulsar: PUT $PULSAR_ADMIN/$1 answered HTTP $code" >&2
        return 1
        ;;
    esac
}

# When the admin API first answered without the namespace (pulsar_ready).
pulsar_answering_since=""

# Prints the namespace's topics once the broker knows cluster standalone
# and namespace public/default (java_wait's probe).
pulsar_ready() {
    local clusters topics tenant="${PULSAR_NAMESPACE%%/*}"
    if ! { port_open "$PULSAR_HTTP_PORT" && port_open "$PULSAR_PORT" &&
        clusters="$(pulsar_admin_get clusters)" &&
        [[ "$clusters" == *'"standalone"'* ]]; }; then
        return 1
    fi
    if topics="$(pulsar_admin_get "persistent/$PULSAR_NAMESPACE")"; then
        printf '%s\n' "$topics"
        return
    fi
    # Standalone creates tenant public and namespace public/default itself
    # right after the broker starts; creating them here at the same time
    # could make its start fail, so only when they are still missing a
    # while later.
    pulsar_answering_since="${pulsar_answering_since:-$SECONDS}"
    if ((SECONDS - pulsar_answering_since >= 15)); then
        echo "pulsar: creating namespace $PULSAR_NAMESPACE" >&2
        pulsar_admin_get "tenants/$tenant" >/dev/null ||
            pulsar_admin_put "tenants/$tenant" '{"allowedClusters":["standalone"]}' || true
        pulsar_admin_put "namespaces/$PULSAR_NAMESPACE" || true
        pulsar_answering_since=""
    fi
    return 1
}

# Standalone's bookie stops writing when its disk is fuller than
# diskUsageThreshold (0.99, see pulsar_configure): every produce and
# subscribe then waits for a bookie that never comes back. Refuse to go on
# there with the reason, and warn from diskUsageWarnThreshold (0.95).
pulsar_disk_check() {
    local used
    used="$(df --output=pcent "$PULSAR_DIR" | tail -1 | tr -dc '0-9')"
    if ((used >= 99)); then
        echo "pulsar: the disk holding $PULSAR_DIR is ${used}% full; Pulsar's bookie writes nothing above 99%. Free some space and run again." >&2
        exit 1
    fi
    if ((used >= 95)); then
        echo "pulsar: warning: the disk holding $PULSAR_DIR is ${used}% full; Pulsar's bookie stops writing above 99%" >&2
    fi
}

pulsar_up() {
    java_install
    mkdir -p "$PULSAR_DIR"
    pulsar_disk_check
    local pid started=0
    if pid="$(pulsar_pid)"; then
        echo "pulsar: already up (pid $pid, port $PULSAR_PORT)"
    else
        ports_free pulsar "$PULSAR_PORT" "$PULSAR_HTTP_PORT" "$PULSAR_BOOKIE_PORT"
        pulsar_fetch
        pulsar_configure
        fresh_data pulsar "$PULSAR_DATA"
        mkdir -p "$PULSAR_DATA"
        # Run in $PULSAR_DIR: standalone resolves a few paths (protocol
        # handlers, interceptors, offloaders, an old ZooKeeper data dir that
        # would switch it to ZooKeeper) against the working directory.
        # The --add-opens and netty options are those of Pulsar's bin/pulsar
        # for Java 17.
        # shellcheck disable=SC2086 # PULSAR_HEAP is several options.
        detach "$PULSAR_PIDFILE" "$PULSAR_OUT" "$PULSAR_DIR" java $PULSAR_HEAP \
            -server -XX:+UseG1GC -XX:MaxGCPauseMillis=10 \
            -XX:+PerfDisableSharedMem -Djava.awt.headless=true \
            --add-opens java.base/java.io=ALL-UNNAMED \
            --add-opens java.base/java.nio=ALL-UNNAMED \
            --add-opens java.base/jdk.internal.misc=ALL-UNNAMED \
            --add-opens java.base/java.util.zip=ALL-UNNAMED \
            --add-opens java.base/sun.net=ALL-UNNAMED \
            --add-opens java.base/jdk.internal.platform=ALL-UNNAMED \
            --add-opens java.management/sun.management=ALL-UNNAMED \
            --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
            -Dio.netty.tryReflectionSetAccessible=true \
            -Dio.netty.recycler.maxCapacityPerThread=4096 \
            -Dpulsar.allocator.exit_on_oom=true \
            -Dlog4j2.configurationFile="$PULSAR_LOG4J_CONFIG" \
            -cp "$PULSAR_LIB/*" org.apache.pulsar.PulsarStandaloneStarter \
            --config "$PULSAR_CONFIG" \
            --no-functions-worker --no-stream-storage \
            --metadata-dir "$PULSAR_DATA/metadata" \
            --bookkeeper-dir "$PULSAR_DATA/bookkeeper" \
            --bookkeeper-port "$PULSAR_BOOKIE_PORT"
        pid="$(cat "$PULSAR_PIDFILE")"
        started=1
    fi
    local topics name
    topics="$(java_wait pulsar "$pid" "$PULSAR_START_SECONDS" \
        "broker on 127.0.0.1:$PULSAR_PORT (admin $PULSAR_ADMIN)" \
        "$PULSAR_LOG" "$PULSAR_OUT" pulsar_ready)"
    # The admin API lists full names: persistent://public/default/NAME.
    for name in "${PULSAR_TOPICS[@]}"; do
        if [[ "$topics" != *"\"persistent://$PULSAR_NAMESPACE/$name\""* ]]; then
            pulsar_admin_put "persistent/$PULSAR_NAMESPACE/$name" || exit 1
            echo "pulsar: created topic persistent://$PULSAR_NAMESPACE/$name"
        fi
    done
    if ((started)); then
        echo "pulsar: up on 127.0.0.1:$PULSAR_PORT (pid $pid, admin http://127.0.0.1:$PULSAR_HTTP_PORT, bookie port $PULSAR_BOOKIE_PORT, data in $PULSAR_DATA)"
    fi
}

# Like Kafka's broker: SIGKILL after PULSAR_STOP_SECONDS.
pulsar_down() {
    service_down pulsar "$PULSAR_PIDFILE" "$PULSAR_STOP_SECONDS" "$PULSAR_LOG" kill
}

pulsar_status() {
    java_status pulsar "$PULSAR_PORT" "$PULSAR_HTTP_PORT"
}

action="${1:-}"
case "$action" in
up | down | status) ;;
kafka-topics)
    shift
    kafka_topics "$@"
    exit
    ;;
*) usage ;;
esac
shift
(($# > 0)) || set -- all
# Every name is checked before anything starts or stops, so a typo or an
# unsupported service does not leave half of the list done.
services=()
for service in "$@"; do
    case "$service" in
    redis | kafka | pulsar) services+=("$service") ;;
    all) services+=(redis kafka pulsar) ;;
    *) usage ;;
    esac
done
for service in "${services[@]}"; do
    "${service}_$action"
done
