#!/usr/bin/python3
"""Cross-check ibc-crypt against Python `cryptography` (an independent
implementation): random keys, DUNs (with carries) and 1..8 data units of 512
or 4096 bytes, both directions, byte for byte.

usage: crosscheck.py IBC_CRYPT [CASES]
The seed comes from $IBC_CROSSCHECK_SEED, else it is random; it is printed so
a failure can be reproduced.  Exit 0 if all cases agree, 1 otherwise, 77 if
`cryptography` is missing.
"""
import hashlib
import os
import random
import subprocess
import sys
import tempfile

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:
    print("SKIP: python3 lacks the cryptography module")
    sys.exit(77)

M128 = (1 << 128) - 1


def ecb(alg, data, encrypt=True):
    c = Cipher(alg, modes.ECB())
    x = c.encryptor() if encrypt else c.decryptor()
    return x.update(data) + x.finalize()


def iv16(dun):
    """plain64-style IV: the DUN as little-endian bytes, truncated to 16."""
    return (dun & M128).to_bytes(16, "little")


def aes_xts(key, dun, data, dus, encrypt):
    out = b""
    for i in range(0, len(data), dus):
        c = Cipher(algorithms.AES(key), modes.XTS(iv16(dun + i // dus)))
        x = c.encryptor() if encrypt else c.decryptor()
        out += x.update(data[i:i + dus]) + x.finalize()
    return out


def aes_cbc_essiv(key, dun, data, dus, encrypt):
    salt = hashlib.sha256(key).digest()
    out = b""
    for i in range(0, len(data), dus):
        iv = ecb(algorithms.AES(salt), iv16(dun + i // dus))
        c = Cipher(algorithms.AES(key), modes.CBC(iv))
        x = c.encryptor() if encrypt else c.decryptor()
        out += x.update(data[i:i + dus]) + x.finalize()
    return out


def sm4_xts(key, dun, data, dus, encrypt):
    """XTS (IEEE 1619 tweak doubling) written out over SM4-ECB."""
    k1, k2 = key[:16], key[16:]
    out = b""
    for i in range(0, len(data), dus):
        t = int.from_bytes(ecb(algorithms.SM4(k2), iv16(dun + i // dus)), "little")
        masks = []
        for _ in range(dus // 16):
            masks.append(t.to_bytes(16, "little"))
            t <<= 1
            if t >> 128:
                t = (t & M128) ^ 0x87
        mask = int.from_bytes(b"".join(masks), "little")
        unit = int.from_bytes(data[i:i + dus], "little") ^ mask
        unit = ecb(algorithms.SM4(k1), unit.to_bytes(dus, "little"), encrypt)
        out += (int.from_bytes(unit, "little") ^ mask).to_bytes(dus, "little")
    return out


def have_sm4():
    try:
        ecb(algorithms.SM4(bytes(16)), bytes(16))
        return True
    except Exception:
        return False


MODES = [("aes-xts-plain64", 64, aes_xts),
         ("aes-cbc-essiv:sha256", 16, aes_cbc_essiv)]


def random_dun(rng, units):
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randrange(1 << 20)
    if kind == 1:   # carry from the low 64-bit word into the next
        return (rng.randrange(1 << 20) << 64) | ((1 << 64) - rng.randrange(1, units + 1))
    if kind == 2:   # the 16-byte IV wraps at 2^128
        return (rng.randrange(4) << 128) | ((1 << 128) - rng.randrange(1, units + 1))
    if kind == 3:
        return rng.getrandbits(64)
    return rng.getrandbits(256)


def run_tool(tool, op, mode, dus, dun, keyfile, data):
    p = subprocess.run([tool, op, mode, str(dus), "%x" % dun, keyfile],
                       input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
    if p.returncode != 0:
        raise RuntimeError("ibc-crypt %s %s failed (%d): %s"
                           % (op, mode, p.returncode, p.stderr.decode().strip()))
    return p.stdout


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    tool = sys.argv[1]
    cases = int(sys.argv[2]) if len(sys.argv) == 3 else 200
    seed = int(os.environ.get("IBC_CROSSCHECK_SEED", random.randrange(1 << 32)))
    print("crosscheck seed %d (set IBC_CROSSCHECK_SEED=%d to repeat)" % (seed, seed))
    rng = random.Random(seed)
    modes_ = MODES + ([("sm4-xts-plain64", 32, sm4_xts)] if have_sm4() else [])
    failures = 0
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        keyfile = os.path.join(tmp, "key")
        for n in range(cases):
            name, key_size, ref = modes_[n % len(modes_)]
            dus = rng.choice((512, 4096))
            units = rng.randint(1, 8)
            dun = random_dun(rng, units)
            key = rng.randbytes(key_size)
            data = rng.randbytes(units * dus)
            with open(keyfile, "wb") as f:
                f.write(key)
            what = "case %d: %s dus=%d units=%d dun=%#x" % (n, name, dus, units, dun)
            try:
                ct = run_tool(tool, "enc", name, dus, dun, keyfile, data)
                want_ct = ref(key, dun, data, dus, True)
                if ct != want_ct:
                    raise RuntimeError("ciphertext differs")
                pt = run_tool(tool, "dec", name, dus, dun, keyfile, want_ct)
                if pt != data:
                    raise RuntimeError("decryption differs")
            except RuntimeError as e:
                print("FAIL %s: %s" % (what, e))
                failures += 1
            counts[name] = counts.get(name, 0) + 1
    for name, c in sorted(counts.items()):
        print("%-22s %d cases" % (name, c))
    print("%d of %d cases failed" % (failures, cases))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
