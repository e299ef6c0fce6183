#!/usr/bin/env bash
# Build the native packet path in place: audionode/native/_packet<EXT_SUFFIX>
# (docs/decisions/0017-native-packet-path.md). Usage: build.sh PYTHON. Exit 1 when the
# compiler or a library is missing; the node then runs the pure-Python path.
set -eu
PY=${1:-python3}
cd "$(dirname "$0")"
INC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
SUFFIX=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
CC=${CC:-cc}
OUT="_packet$SUFFIX"
"$CC" -O2 -g -Wall -Wextra -Wno-missing-field-initializers -Wno-unused-parameter -Werror -std=gnu11 -fPIC -shared \
    -fvisibility=hidden -I"$INC" _packet.c _ogg.c _reader.c _uring.c -o "$OUT.tmp" -lcrypto -lsodium
mv "$OUT.tmp" "$OUT"
echo "built audionode/native/$OUT"
