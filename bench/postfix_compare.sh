#!/usr/bin/env bash
# unsubrelay against Postfix with smtp-source / smtp-sink (docs/performance.md).
#   ./bench/postfix_compare.sh [--cells 10:1,100:100] [--messages 2000] [--warmup 200] [--repeat 3] [--smoke]
#   (default: six cells, 10 KB and 100 KB x 1, 10, 100 recipients; median of 3 interleaved runs)
# Installs the packages, builds a Release binary, runs bench/postfix_compare.py.
# It needs root (Postfix's master) and a machine without a configured Postfix:
# it writes /etc/postfix/main.cf for its private instance and removes it after.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh test
if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix bsdutils
fi
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNSUBRELAY_TESTS=OFF >/dev/null
ninja -C build/release unsubrelay
exec python3 bench/postfix_compare.py "$@"
