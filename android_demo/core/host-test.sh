#!/usr/bin/env bash
# Compile the core and its JUnit 4 tests with the JDK and run them on the host JVM, without Gradle or the
# Android SDK (what CI does). Needs javac and Debian's junit4 (apt-get install junit4), or JUNIT_JAR and
# HAMCREST_JAR pointing at the jars. Arguments are JVM options, e.g. other golden vectors:
#   android_demo/core/host-test.sh -Dedgeage.golden=/tmp/golden.json
set -euo pipefail
cd "$(dirname "$0")"
junit=${JUNIT_JAR:-/usr/share/java/junit4.jar}
hamcrest=${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}
command -v javac >/dev/null || { echo "javac not found: install a JDK (11 or newer)" >&2; exit 3; }
[ -f "$junit" ] || { echo "JUnit 4 not found at $junit: apt-get install junit4 (or set JUNIT_JAR)" >&2; exit 3; }
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
javac -Xlint:all -Werror --release 11 -d "$build/main" $(find src/main/java -name '*.java')
javac --release 11 -d "$build/test" -cp "$build/main:$junit" $(find src/test/java -name '*.java')
tests=$(cd src/test/java && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
java "$@" -cp "$build/main:$build/test:$junit:$hamcrest" org.junit.runner.JUnitCore $tests
