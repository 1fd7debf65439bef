#!/usr/bin/env bash
# Installs everything `make demo` and `make test` need on a fresh Debian machine of this kind:
# Debian packages (Java 17, Maven, openssl), the pinned Python venv, and the Cassandra 5.0 jars.
# Each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

JAVA17=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
need_apt=()
JAVAC17=/usr/lib/jvm/java-17-openjdk-amd64/bin/javac  # the rig's Java client app is compiled
[ -x "$JAVA17" ] && [ -x "$JAVAC17" ] || need_apt+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v openssl >/dev/null || need_apt+=(openssl)
# The rig's agentless targets: a real sshd (started by the sandbox, never as a system service).
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
# The rig's containerised targets: podman with runc (crun does not run here), catatonit for
# `podman run --init`, debootstrap for the base image (no registry is reachable).
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
[ -x /usr/libexec/podman/catatonit ] || need_apt+=(catatonit)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
# The fault suite injects signals at exact syscalls with strace (sandbox/faults.py).
command -v strace >/dev/null || need_apt+=(strace)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # No service may start from a package's postinst (openssh-server would listen on :22).
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  apt-get install -y -q --no-install-recommends "${need_apt[@]}"
  if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
fi

PY=${PYTHON:-python3}
if [ ! -f .venv/.installed ] || [ requirements.txt -nt .venv/.installed ]; then
  echo "bootstrap: creating .venv with pinned requirements"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  touch .venv/.installed
fi

LIB=.cache/cassandra/lib
if ! ls "$LIB"/cassandra-all-5.0.*.jar >/dev/null 2>&1; then
  echo "bootstrap: fetching cassandra-all 5.0 and its runtime jars from Maven Central"
  start=$(date +%s)
  mkdir -p "$LIB"
  (cd sandbox/maven && JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 mvn -B -q \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/../../$LIB")
  echo "bootstrap: $(ls "$LIB" | wc -l) jars in $(( $(date +%s) - start ))s"
fi
ls "$LIB"/cassandra-all-5.0.*.jar >/dev/null

JLIB=.cache/java-client/lib JCLASSES=.cache/java-client/classes
if ! ls "$JLIB"/java-driver-core-4.19.*.jar >/dev/null 2>&1; then
  echo "bootstrap: fetching java-driver-core 4.19 and its runtime jars from Maven Central"
  mkdir -p "$JLIB"
  (cd sandbox/java_client && JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 mvn -B -q \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/../../$JLIB")
fi
if [ ! -f "$JCLASSES/ClientApp.class" ] || [ sandbox/java_client/ClientApp.java -nt "$JCLASSES/ClientApp.class" ]; then
  echo "bootstrap: compiling the rig's Java client app"
  mkdir -p "$JCLASSES"
  "$JAVAC17" -d "$JCLASSES" -cp "$JLIB/*" sandbox/java_client/ClientApp.java
fi
"$JAVA17" -version 2>&1 | head -1
