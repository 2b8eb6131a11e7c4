#!/usr/bin/env python3
"""The seed's GnuPG example ("Mapping File Descriptors" in Twisted's "Using
Processes"): decrypt with ``gpg``, the passphrase on child fd 3, machine-
readable status lines on child fd 4, the plaintext on fd 1 and gpg's own
messages passed straight through to our stderr (``2: 2``).

Only the imports changed, plus what the seed left out so that it runs: the
passphrase is given to the protocol, the buffers are bytes, and a failure
errbacks with the process's end reason instead of a bare exit code.

Run it: ``python examples/gpg.py``. With ``gpg`` on PATH it encrypts a
message symmetrically (in a throw-away GNUPGHOME) and decrypts it again;
without it, or with ``--stand-in``, a small Python stand-in plays gpg with
the same command line and the same fds (it is a toy, not encryption).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from ferroproc import reactor
from ferroproc.defer import Deferred, gatherResults
from ferroproc.protocol import ProcessProtocol


class GPGProtocol(ProcessProtocol):
    def __init__(self, crypttext: bytes, passphrase: bytes) -> None:
        self.crypttext = crypttext
        self.passphrase = passphrase
        self.plaintext = b""
        self.status = b""
        self.deferred: Deferred[GPGProtocol] = Deferred()

    def connectionMade(self) -> None:
        self.transport.writeToChild(3, self.passphrase)
        self.transport.closeChildFD(3)
        self.transport.writeToChild(0, self.crypttext)
        self.transport.closeChildFD(0)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 1:
            self.plaintext += data
        if childFD == 4:
            self.status += data

    def processEnded(self, status: Any) -> None:
        rc = status.value.exitCode
        if rc == 0:
            self.deferred.callback(self)
        else:
            self.deferred.errback(status)


#: How to start gpg: the seed's command line, then what gpg >= 2.1 needs to
#: take a passphrase from an fd in batch mode and not to cache it.
GPG = ["gpg", "--batch", "--pinentry-mode", "loopback", "--no-symkey-cache"]
DECRYPT = ["--decrypt", "--passphrase-fd", "3", "--status-fd", "4"]
ENCRYPT = ["--symmetric", "--passphrase-fd", "3", "--status-fd", "4", "--output", "-"]


def run_gpg(
    gpg: list[str], args: list[str], data: bytes, passphrase: bytes, env: dict[str, str] | None = None
) -> Deferred[GPGProtocol]:
    """Start ``gpg + args`` with the seed's fd map; fires with the protocol
    (``plaintext`` holds fd 1, ``status`` fd 4) or fails with the end reason."""
    gp = GPGProtocol(data, passphrase)
    cmd = gpg + args
    reactor.spawnProcess(gp, cmd[0], cmd, env=env, childFDs={0: "w", 1: "r", 2: 2, 3: "w", 4: "r"})
    return gp.deferred


def decrypt(crypttext: bytes, passphrase: bytes, gpg: list[str] = GPG, env: Any = None) -> Deferred[GPGProtocol]:
    """The seed's ``decrypt``."""
    return run_gpg(gpg, DECRYPT, crypttext, passphrase, env)


def encrypt(plaintext: bytes, passphrase: bytes, gpg: list[str] = GPG, env: Any = None) -> Deferred[GPGProtocol]:
    """Symmetric encryption, the same shape: the result is in ``.plaintext``
    (fd 1 output)."""
    return run_gpg(gpg, ENCRYPT, plaintext, passphrase, env)


# A gpg look-alike for machines without gpg: the same argv and fds. It reads
# the passphrase from --passphrase-fd to EOF, stdin to EOF, writes the result
# on fd 1 and [GNUPG:] status lines on --status-fd. Its "cipher" is a SHA-256
# keystream with a MAC, which is only enough to tell a wrong passphrase.
STAND_IN = r"""
import hashlib, os, sys
argv = sys.argv[1:]
pfd = int(argv[argv.index("--passphrase-fd") + 1])
sfd = int(argv[argv.index("--status-fd") + 1])
def read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)
def status(line):
    os.write(sfd, b"[GNUPG:] " + line.encode() + b"\n")
def stream(key, n):
    out, i = [], 0
    while 32 * i < n:
        out.append(hashlib.sha256(key + i.to_bytes(8, "big")).digest())
        i += 1
    return b"".join(out)[:n]
def xor(data, key):
    return bytes(a ^ b for a, b in zip(data, stream(key, len(data))))
def mac(key, data):
    return hashlib.sha256(b"mac" + key + data).hexdigest().encode()
passphrase = read_all(pfd).rstrip(b"\n")
data = read_all(0)
if "--symmetric" in argv:
    os.write(1, b"STAND-IN-GPG\n" + mac(passphrase, data) + b"\n" + xor(data, passphrase))
    status("BEGIN_ENCRYPTION 2 9")
    status("END_ENCRYPTION")
    sys.exit(0)
status("NEED_PASSPHRASE_SYM 9 3 2")
head, tag, body = data.split(b"\n", 2)
plain = xor(body, passphrase)
if head != b"STAND-IN-GPG" or mac(passphrase, plain) != tag:
    sys.stderr.write("gpg (stand-in): decryption failed: Bad session key\n")
    status("DECRYPTION_FAILED")
    status("END_DECRYPTION")
    sys.exit(2)
status("BEGIN_DECRYPTION")
status("PLAINTEXT 62 0")
os.write(1, plain)
status("DECRYPTION_OKAY")
status("END_DECRYPTION")
"""

STAND_IN_GPG = [sys.executable, "-c", STAND_IN]


class GnuPGHome:
    """A throw-away GNUPGHOME; stops its gpg-agent and removes it on exit."""

    def __enter__(self) -> dict[str, str]:
        self.home = tempfile.mkdtemp(prefix="ferroproc-gpg-")
        return dict(os.environ, GNUPGHOME=self.home)

    def __exit__(self, *exc: object) -> None:
        if shutil.which("gpgconf"):
            subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "gpg-agent"], check=False)
        shutil.rmtree(self.home, ignore_errors=True)


def round_trip(message: bytes, passphrase: bytes, gpg: list[str], env: Any) -> Deferred[Any]:
    """Encrypt, then decrypt with the right and with a wrong passphrase.
    Fires with ``(decrypted GPGProtocol, exit code of the wrong try)``."""

    def decrypt_both(enc: GPGProtocol) -> Deferred[Any]:
        good = decrypt(enc.plaintext, passphrase, gpg, env)
        bad = decrypt(enc.plaintext, b"not " + passphrase, gpg, env)
        bad.addCallbacks(lambda _: None, lambda f: f.value.exitCode)
        return gatherResults([good, bad])

    return encrypt(message, passphrase, gpg, env).addCallback(decrypt_both)


def main(argv: list[str]) -> int:
    real = shutil.which("gpg") is not None and "--stand-in" not in argv
    message = b"attack at dawn\n"
    result: dict[str, Any] = {}

    def done(outcome: Any) -> None:
        result["outcome"] = outcome
        reactor.stop()

    with GnuPGHome() as env:
        gpg = GPG if real else STAND_IN_GPG
        reactor.callWhenRunning(lambda: round_trip(message, b"sekrit", gpg, env).addBoth(done))
        reactor.run()
    outcome = result["outcome"]
    if not isinstance(outcome, list):
        print("failed:", outcome, file=sys.stderr)
        return 1
    good, bad_rc = outcome
    print("using:", "gpg" if real else "the stand-in")
    print("plaintext:", good.plaintext.decode().strip())
    for line in good.status.decode().splitlines():
        print("status:", line)
    print("wrong passphrase: exit code", bad_rc)
    return 0 if good.plaintext == message and bad_rc else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
