"""Kafka for development and tests: a single-node KRaft broker run from Maven jars, plus aiokafka helpers.

Without Docker the broker is `kafka.Kafka` from `org.apache.kafka:kafka_2.13`, fetched once with Maven into
the cache dir. With `KAFKA_BOOTSTRAP_SERVERS` set, an existing cluster is used instead.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.structs import OffsetAndMetadata

from streams.config import MAX_MESSAGE_BYTES, PROJECT_ROOT, Settings

# The 4.0 line is what faust-streaming's live-broker CI runs against (stack-notes D0).
KAFKA_VERSION = "4.0.2"  # latest patch release of the 4.0 line
SCALA_VERSION = "2.13"
MIN_JAVA = 17
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
# kafka_2.13's published pom carries only slf4j-api; the log4j2 backend that the release tarball ships
# (2.24.3 in Kafka 4.0) must be added, or SLF4J falls back to NOP and the broker logs nothing.
LOG4J_VERSION = "2.24.3"

_T = TypeVar("_T")


class BrokerUnavailable(RuntimeError):
    """No Kafka broker can be used: tools missing, startup failed, or a cluster is unreachable."""


# --------------------------------------------------------------------------------------------- prerequisites


def _java_executable() -> str | None:
    # Same rule as Kafka's kafka-run-class.sh: JAVA_HOME wins over PATH.
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home, "bin", "java"), os.X_OK):
        return str(Path(java_home, "bin", "java"))
    return shutil.which("java")


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" means Java 8


def check_prerequisites(*, need_maven: bool = True) -> None:
    """Raise BrokerUnavailable naming every missing tool and the alternatives to a local broker."""
    problems = []
    java = _java_executable()
    if java is None:
        problems.append(f"`java` ({MIN_JAVA} or newer) was not found on PATH")
    else:
        major = _java_major(java)
        if major is None or major < MIN_JAVA:
            problems.append(f"`{java}` is Java {major or 'of unknown version'}, Kafka needs {MIN_JAVA}+")
    if need_maven and shutil.which("mvn") is None:
        problems.append("`mvn` (Maven, used once to download the Kafka jars) was not found on PATH")
    if problems:
        raise BrokerUnavailable(
            f"Cannot run the local Kafka {KAFKA_VERSION} broker: {'; '.join(problems)}. "
            "Install them, or set KAFKA_BOOTSTRAP_SERVERS=host:port to use an existing cluster, "
            f"or run `docker compose up --build` in {PROJECT_ROOT} (Kafka and the whole stack in containers)."
        )


# --------------------------------------------------------------------------------------------- jars


def kafka_home(cache_dir: Path) -> Path:
    return Path(cache_dir).resolve() / f"kafka-{KAFKA_VERSION}"


def kafka_jars_ready(cache_dir: Path) -> bool:
    return (kafka_home(cache_dir) / ".complete").exists()


def _wrapper_pom() -> str:
    log4j = "\n".join(
        f"    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{LOG4J_VERSION}</version></dependency>"
        for artifact in ("log4j-api", "log4j-core", "log4j-slf4j-impl")
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.denomas</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
{log4j}
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>{DEPENDENCY_PLUGIN_VERSION}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
"""


def _verify_libs(libs: Path) -> None:
    names = [p.name for p in libs.glob("*.jar")]
    required = {
        f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}": lambda n: n == f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar",
        # Without a log4j backend SLF4J falls back to NOP and the broker logs nothing.
        "log4j-core": lambda n: n.startswith("log4j-core-"),
        "log4j-slf4j(2)-impl": lambda n: n.startswith(("log4j-slf4j-impl-", "log4j-slf4j2-impl-")),
    }
    missing = [what for what, ok in required.items() if not any(ok(n) for n in names)]
    if missing:
        raise BrokerUnavailable(f"Kafka jars in {libs} are incomplete, missing: {', '.join(missing)}")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Parallel test sessions share the cache; only one of them should run Maven.
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_kafka_jars(cache_dir: Path) -> Path:
    """Fetch kafka_2.13 and its runtime closure into <cache_dir>/kafka-<version>/libs (once)."""
    home = kafka_home(cache_dir)
    libs, marker = home / "libs", home / ".complete"
    if marker.exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with _file_lock(home / ".lock"):
        if marker.exists():
            return libs
        check_prerequisites()  # Maven (and the JDK it runs on) are needed from here on
        mvn = shutil.which("mvn") or "mvn"
        shutil.rmtree(libs, ignore_errors=True)  # a previous run may have been interrupted
        pom = home / "pom.xml"
        pom.write_text(_wrapper_pom())
        print(f"fetching Kafka {KAFKA_VERSION} jars with Maven ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            raise BrokerUnavailable(
                f"Maven could not fetch org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION} "
                f"(exit {result.returncode}):\n" + "\n".join(output[-20:])
            )
        _verify_libs(libs)
        marker.write_text(f"{KAFKA_VERSION}\n")
        print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return libs


# --------------------------------------------------------------------------------------------- local broker


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _random_cluster_id() -> str:
    # Same format as Kafka's Uuid.randomUuid().toString(); saves a JVM start for `random-uuid`.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


_START_MARK = "===== starting kafka"


def _log_excerpt(path: Path, errors: int = 8, lines: int = 15) -> str:
    """ERROR lines and the last lines of the newest start in the broker log (the cause is rarely last)."""
    try:
        section = path.read_text(errors="replace").rsplit(_START_MARK, 1)[-1].splitlines()
    except OSError:
        return f"(no log at {path})"
    found = [ln for ln in section if re.match(r"\[[^]]*\] (ERROR|FATAL) ", ln) or ln.startswith("Caused by:")]
    head = f"errors:\n{chr(10).join(list(dict.fromkeys(found))[:errors])}\n" if found else ""
    return f"{head}last lines of {path}:\n" + "\n".join(section[-lines:])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine from sync code in a private thread and loop.

    A thread works inside a running loop too, and asyncio.run there cannot reset the caller's
    current event loop (pytest-asyncio's session loop) or install its SIGINT handler.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# shutdownHook=disable: log4j's own hook would otherwise stop logging before Kafka's shutdown hook runs.
LOG4J2_PROPERTIES = """\
status = warn
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class LocalBroker:
    """A combined broker+controller KRaft node on 127.0.0.1, data and logs under `workdir`."""

    def __init__(
        self,
        workdir: Path,
        cache_dir: Path,
        port: int | None = None,
        heap: str = "512m",
        partitions: int = 4,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.cache_dir = Path(cache_dir)
        self.port = port or _free_port()
        self.controller_port = _free_port()
        while self.controller_port == self.port:
            self.controller_port = _free_port()
        self.heap = heap
        self.partitions = partitions
        self.log_path = self.workdir / "broker.log"
        self.pid_path = self.workdir / "broker.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- files

    def _server_properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": str(self.partitions),
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(MAX_MESSAGE_BYTES),
            "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
            # Small box: the cleaner allocates this per thread at startup (default 128 MiB).
            "log.cleaner.dedupe.buffer.size": "33554432",
            "num.network.threads": "2",
            "num.io.threads": "2",
        }
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def _cluster_id(self) -> str:
        # Persisted so a restart over the same workdir matches the formatted meta.properties.
        path = self.workdir / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        cid = _random_cluster_id()
        path.write_text(cid + "\n")
        return cid

    def _java_cmd(self, main: str, *args: str, heap: str) -> list[str]:
        java = _java_executable() or "java"
        libs = kafka_home(self.cache_dir) / "libs"
        return [
            java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            "-cp", f"{libs}/*", main, *args,
        ]  # fmt: skip

    def _check_stale_broker(self) -> None:
        if not self.pid_path.exists():
            return
        with contextlib.suppress(ValueError, OSError):
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if _pid_alive(pid) and "kafka.Kafka" in cmdline and str(self.workdir) in cmdline:
                raise BrokerUnavailable(
                    f"Another Kafka broker (pid {pid}) is running on {self.workdir}; "
                    f"stop it (`kill {pid}`) or use another data dir."
                )

    # -- lifecycle

    def start(self, timeout: float = 90) -> None:
        if self.is_running():
            return
        if not kafka_jars_ready(self.cache_dir):
            ensure_kafka_jars(self.cache_dir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._check_stale_broker()
        (self.workdir / "server.properties").write_text(self._server_properties())
        (self.workdir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        try:
            self._start_once(timeout, self.heap)
        except BrokerUnavailable as exc:
            # The JVM exits on OOM (ExitOnOutOfMemoryError); one retry with the server script's 1g heap.
            if "OutOfMemoryError" not in str(exc) or self.heap == "1g":
                raise
            self.heap = "1g"
            self._start_once(timeout, self.heap)

    def _format_storage(self, heap: str) -> None:
        if (self.workdir / "data" / "meta.properties").exists():
            return  # already formatted; StorageTool would only say so (and cost a JVM start)
        cmd = self._java_cmd(
            "kafka.tools.StorageTool", "format", "-t", self._cluster_id(),
            "-c", str(self.workdir / "server.properties"), "--ignore-formatted", heap=heap,
        )  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise BrokerUnavailable(
                f"Formatting Kafka storage in {self.workdir / 'data'} failed (exit {result.returncode}):\n"
                + (result.stdout + result.stderr).strip()[-3000:]
            )

    def _start_once(self, timeout: float, heap: str) -> None:
        deadline = time.monotonic() + timeout
        self._format_storage(heap)
        with self.log_path.open("ab") as log:
            log.write(f"\n{_START_MARK} {KAFKA_VERSION} on {self.bootstrap_servers} =====\n".encode())
            log.flush()
            # Own session: a terminal Ctrl-C reaches only us, and we shut the broker down in order.
            self._proc = subprocess.Popen(
                self._java_cmd("kafka.Kafka", str(self.workdir / "server.properties"), heap=heap),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.pid_path.write_text(f"{self._proc.pid}\n")
        atexit.register(self.stop)
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._forget()
                raise BrokerUnavailable(
                    f"Kafka broker exited with code {code} during startup.\n" + _log_excerpt(self.log_path)
                )
            if _port_open(self.port) and _run_sync(_probe(self.bootstrap_servers, 3.0)):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailable(
                    f"Kafka broker not ready after {timeout:.0f} s.\n" + _log_excerpt(self.log_path)
                )
            time.sleep(0.25)

    def _forget(self) -> None:
        self._proc = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL, as a crash would end it (fault scenarios); `start` again recovers from the same data."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(30)
            self._forget()

    def stop(self) -> None:
        """SIGTERM (controlled shutdown), SIGKILL after 30 s. Only touches the process we started."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._forget()


# --------------------------------------------------------------------------------------------- async helpers


async def _probe(bootstrap: str, timeout: float) -> bool:
    """True when a metadata request returns at least one broker."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await client.bootstrap()
            return bool(client.cluster.brokers())
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


async def wait_until_reachable(bootstrap: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await _probe(bootstrap, min(5.0, max(0.5, deadline - time.monotonic()))):
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"Kafka at {bootstrap} was not reachable within {timeout:.0f} s")
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_topics(
    bootstrap: str,
    names: list[str],
    partitions: int,
    configs: dict[str, str] | None = None,
    *,
    replication_factor: int = 1,
) -> None:
    """Create topics, ignoring those that already exist. max.message.bytes defaults to MAX_MESSAGE_BYTES."""
    topic_configs = {"max.message.bytes": str(MAX_MESSAGE_BYTES), **(configs or {})}
    async with _admin(bootstrap) as admin:
        await _create_missing(admin, dict.fromkeys(names, topic_configs), partitions, replication_factor)


async def _create_missing(admin: AIOKafkaAdminClient, wanted: dict[str, dict[str, str]], partitions: int,
                          replication_factor: int) -> None:
    new = [NewTopic(name, partitions, replication_factor, topic_configs=configs) for name, configs in wanted.items()]
    response = await admin.create_topics(new)
    for topic, code, *rest in response.topic_errors:
        error = for_code(code)
        if code and error is not TopicAlreadyExistsError:
            raise error(f"creating topic {topic!r}: {rest[0] if rest else ''}")


DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source: set on the topic itself (not a broker default)


async def _topic_configs(admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30) -> dict[str, list]:
    """Config entries (name, value, read_only, source, ...) per topic; waits for topics just created to show."""
    deadline = time.monotonic() + timeout
    while True:
        [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        errors = [(for_code(code), topic, message) for code, message, _t, topic, _e in described.resources if code]
        if not errors:
            return {topic: entries for _c, _m, _t, topic, entries in described.resources}
        error, topic, message = errors[0]
        if not error.retriable or time.monotonic() > deadline:
            raise error(f"describing topic {topic!r}: {message}")
        await asyncio.sleep(0.2)


async def ensure_topic_configs(bootstrap: str, wanted: dict[str, dict[str, str]], partitions: int,
                               *, replication_factor: int = 1) -> list[str]:
    """Create the missing topics and set the configs of existing ones that differ; returns the names changed.

    Kafka's AlterConfigs (the only form aiokafka sends) replaces every config set on a topic, so the topic's
    other own settings are sent along unchanged.
    """
    async with _admin(bootstrap) as admin:
        await _create_missing(admin, wanted, partitions, replication_factor)
        changes = []
        for topic, entries in (await _topic_configs(admin, list(wanted))).items():
            current = {entry[0]: entry[1] for entry in entries}
            if any(current.get(key) != value for key, value in wanted[topic].items()):
                own = {entry[0]: entry[1] for entry in entries if entry[3] == DYNAMIC_TOPIC_CONFIG}
                changes.append(ConfigResource(ConfigResourceType.TOPIC, topic, own | wanted[topic]))
        if changes:
            [altered] = await admin.alter_configs(changes)
            for code, message, _type, topic in altered.resources:
                if code:
                    raise for_code(code)(f"altering the config of topic {topic!r}: {message}")
    return [change.name for change in changes]


class OffsetProbe:
    """Reads partitions, log-end and committed offsets over clients kept open between calls.

    Opening an admin client and a consumer per question costs ~0.2 s; a probe polled every few hundred
    milliseconds (waiting for a pipeline to drain) must not spend its interval on reconnecting.
    """

    def __init__(self, bootstrap: str) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> OffsetProbe:
        await self._admin.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._admin.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._admin.close()

    async def partitions(self, topics: list[str]) -> list[TopicPartition]:
        wanted = set(topics)
        # All-topics metadata: asking for a missing topic by name would auto-create it on our broker.
        described = await self._admin.describe_topics()
        return [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if t["topic"] in wanted and not t["error_code"]
            for p in t["partitions"]
        ]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._consumer.end_offsets(partitions) if partitions else {}

    async def committed(self, group_id: str, partitions: list[TopicPartition],
                        timeout: float = 30) -> dict[TopicPartition, OffsetAndMetadata]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self._admin.list_consumer_group_offsets(group_id, partitions=partitions)
            except KafkaError as exc:
                # The first group lookup makes the broker create __consumer_offsets and answer
                # COORDINATOR_NOT_AVAILABLE meanwhile; such errors are retriable.
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def group_lag(self, group_id: str, topics: list[str]) -> int:
        """Sum of (end offset - committed offset) over the topics' partitions; no commit counts as 0.

        Committed offsets are read BEFORE end offsets: an agent that commits its input only after its
        output was delivered then can never make a chain of topics look drained while output is in flight.
        """
        partitions = await self.partitions(topics)
        if not partitions:
            return 0
        committed = await self.committed(group_id, partitions)
        ends = await self.end_offsets(partitions)
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, end - offset)
        return lag


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    """Log-end offset per partition; topics that do not exist are left out."""
    async with OffsetProbe(bootstrap) as probe:
        return await probe.end_offsets(await probe.partitions(topics))


async def consumer_group_lag(bootstrap: str, group_id: str, topics: list[str]) -> int:
    """The group's lag on the topics (see OffsetProbe.group_lag)."""
    async with OffsetProbe(bootstrap) as probe:
        return await probe.group_lag(group_id, topics)


async def wait_for_zero_lag(
    bootstrap: str, group_id: str, topics: list[str], timeout: float, poll: float = 0.2,
    progress: Callable[[int, int], object] | None = None,
) -> None:
    """Until the group has consumed everything on `topics`; `progress(done, total)`: records consumed of the
    largest lag seen."""
    deadline = time.monotonic() + timeout
    worst = 0
    async with OffsetProbe(bootstrap) as probe:
        while (lag := await probe.group_lag(group_id, topics)) > 0:
            worst = max(worst, lag)
            if progress is not None:
                progress(worst - lag, worst)
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer group {group_id!r} still has lag {lag} on {topics} after {timeout:.0f} s")
            await asyncio.sleep(poll)
    if progress is not None and worst:
        progress(worst, worst)


# --------------------------------------------------------------------------------------------- client logs


class RepeatFilter(logging.Filter):
    """Lets one record per logger, level and message template through per `window` seconds.

    With the broker away, aiokafka logs each failed connection and metadata attempt (thousands a second);
    the first of a kind is shown at once, the rest are counted and the count is added to the next one shown.
    """

    def __init__(self, window: float = 10.0) -> None:
        super().__init__()
        self.window = window
        self._shown: dict[tuple[str, int, str], float] = {}
        self._suppressed: dict[tuple[str, int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        if now - self._shown.get(key, -self.window) < self.window:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._shown[key] = now
        if suppressed := self._suppressed.pop(key, 0):
            record.msg = f"{record.msg} ({suppressed} more like it not shown)"
        return True


_REPEAT_FILTER = RepeatFilter()


def limit_repeated_logs(*names: str) -> None:
    """Install the shared RepeatFilter on aiokafka's loggers and on `names` (a filter is per logger)."""
    import aiokafka.consumer  # noqa: F401  (imports create the loggers the filter must sit on)
    import aiokafka.producer  # noqa: F401

    known = [name for name in logging.Logger.manager.loggerDict if name == "aiokafka" or name.startswith("aiokafka.")]
    for name in [*known, *names]:
        logger = logging.getLogger(name)
        if _REPEAT_FILTER not in logger.filters:
            logger.addFilter(_REPEAT_FILTER)


# --------------------------------------------------------------------------------------------- entry points


@contextlib.contextmanager
def kafka_cluster(settings: Settings, timeout: float = 90) -> Iterator[str]:
    """Yield a bootstrap string: the configured cluster, else a local broker started (and stopped) here."""
    if settings.kafka_bootstrap_servers:
        _run_sync(wait_until_reachable(settings.kafka_bootstrap_servers, timeout))
        yield settings.kafka_bootstrap_servers
        return
    check_prerequisites(need_maven=not kafka_jars_ready(settings.cache_dir))
    ensure_kafka_jars(settings.cache_dir)
    broker = LocalBroker(settings.data_dir / "kafka", settings.cache_dir, partitions=settings.topic_partitions)
    broker.start(timeout)
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


DEFAULT_BROKER_PORT = 9092


def run_broker(port: int, heap: str, timeout: float) -> int:
    """`denomas-usage broker start`: run a local broker in the foreground until Ctrl-C or SIGTERM."""
    settings = Settings.from_env()

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM behaves like Ctrl-C, also during startup

    previous = signal.signal(signal.SIGTERM, _interrupt)
    broker: LocalBroker | None = None
    try:
        check_prerequisites(need_maven=not kafka_jars_ready(settings.cache_dir))
        ensure_kafka_jars(settings.cache_dir)
        broker = LocalBroker(
            settings.data_dir / "kafka", settings.cache_dir, port=port or None, heap=heap,
            partitions=settings.topic_partitions,
        )  # fmt: skip
        started = time.monotonic()
        broker.start(timeout)
        print(f"Kafka {KAFKA_VERSION} ready in {time.monotonic() - started:.1f} s "
              f"(log: {broker.log_path}); Ctrl-C to stop", file=sys.stderr, flush=True)  # fmt: skip
        print(broker.bootstrap_servers, flush=True)
        while broker.is_running():
            time.sleep(0.5)
        print(f"error: broker exited unexpectedly\n{_log_excerpt(broker.log_path)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.stop()
        signal.signal(signal.SIGTERM, previous)
