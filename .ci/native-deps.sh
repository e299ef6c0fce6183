#!/usr/bin/env bash
# The C libraries the native packet path links (docs/decisions/0017-native-packet-path.md):
# OpenSSL libcrypto (AES-GCM) and libsodium (XChaCha20-Poly1305), plus a C compiler.
# Installed with apt when we are root on a Debian-like system; otherwise nothing happens and
# the build of the extension fails, leaving the pure-Python path (make run still works).
set -u
have() { [ -f /usr/include/sodium.h ] && [ -f /usr/include/openssl/evp.h ] && command -v cc >/dev/null; }
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # Other apt users on a shared machine: wait for the lock rather than fail.
    apt-get -q -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
        gcc libc6-dev libssl-dev libsodium-dev >/dev/null \
    || { apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null \
         && apt-get -q -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
            gcc libc6-dev libssl-dev libsodium-dev >/dev/null; }
fi
have || echo "native-deps: libssl-dev/libsodium-dev/cc missing and not installable here;" \
    "the native packet path will not be built (pure-Python path)" >&2
exit 0
