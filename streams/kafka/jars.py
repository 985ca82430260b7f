"""The Kafka jars for the local broker: Java and Maven checked, `org.apache.kafka:kafka_2.13` and its log4j2 backend
fetched once with Maven into the cache dir (streams/kafka/broker.py runs them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from streams.config import PROJECT_ROOT

# The 4.0 line is what faust-streaming's live-broker CI runs against (stack-notes D0).
KAFKA_VERSION = "4.0.2"  # latest patch release of the 4.0 line
SCALA_VERSION = "2.13"
MIN_JAVA = 17
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
# kafka_2.13's published pom carries only slf4j-api; the log4j2 backend that the release tarball ships
# (2.24.3 in Kafka 4.0) must be added, or SLF4J falls back to NOP and the broker logs nothing.
LOG4J_VERSION = "2.24.3"


class BrokerUnavailable(RuntimeError):
    """No Kafka broker can be used: tools missing, startup failed, or a cluster is unreachable."""


# --------------------------------------------------------------------------------------------- prerequisites


def java_executable() -> str | None:
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
    java = java_executable()
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
