#!/bin/bash
# Cross-check the cipher engine (via ibc-crypt) against Python cryptography:
# AES-256-XTS, AES-128-CBC-ESSIV and SM4-XTS, random keys, DUNs and sizes.
set -euo pipefail

py=/usr/bin/python3
tool="$IBC_BUILD_DIR/tests/ibc-crypt"

if ! [ -x "$py" ] || ! "$py" -c 'import cryptography' 2>/dev/null; then
  echo "SKIP: $py with the cryptography module is required"
  exit 77
fi
if ! [ -x "$tool" ]; then
  echo "error: running cross-check '$tool': not built" >&2
  exit 1
fi
exec "$py" "$IBC_SOURCE_DIR/tests/crosscheck.py" "$tool" 200
