#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, and run the relay in the
# foreground on the embedded defaults (conf/unsubrelay.yaml): SMTP on
# 127.0.0.1:2525, spool in var/spool, every delivered copy written as an .eml
# file in var/outbox. Stop it with Ctrl-C (SIGINT drains like SIGTERM).
# It installs only the build and run packages (scripts/deps/run.txt); the
# test tools (scripts/deps/test.txt, swaks among them) come with ./scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNSUBRELAY_TESTS=OFF >/dev/null
ninja -C build/release unsubrelay
./build/release/unsubrelay check-config -c conf/unsubrelay.yaml
echo "unsubrelay: try it from another terminal:"
command -v swaks >/dev/null || echo "  apt-get install swaks    # (or run ./scripts/test.sh once)"
echo "  swaks --server 127.0.0.1:2525 --from you@example.com --to someone@example.org"
echo "  ls var/outbox/"
exec ./build/release/unsubrelay run -c conf/unsubrelay.yaml
