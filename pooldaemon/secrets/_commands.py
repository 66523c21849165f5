"""The secrets subcommands of ``pooldaemon``: keygen, seal, reseal, secrets check, client-key.

Kept beside the package rather than in ``cli.py`` so the command module stays a
dispatcher. Each handler returns the exit code: 0 done, 1 refused or some value
failed, 2 a usage problem (a key file that cannot be used, a bad argument).
Nothing here prints a secret except ``client-key``, whose job is to show a new
client key once; ``seal`` reads its secret from stdin (without echo on a
terminal) and prints only the sealed value.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from nacl.public import PublicKey

from pooldaemon._keyfiles import write_key_pair
from pooldaemon.errors import ConfigError, SealedValueError, SealingKeyError
from pooldaemon.secrets._client_key import client_entry, new_client_key
from pooldaemon.secrets._fields import verify_sealed
from pooldaemon.secrets._keyfile import (
    generate_private_key,
    key_id,
    parse_public_key,
    private_key_text,
    public_key_text,
    read_key_file,
)
from pooldaemon.secrets._keyring import Keyring, keyring_from_settings
from pooldaemon.secrets._reseal import reseal_bytes, write_in_place
from pooldaemon.secrets._sealing import check_context, seal
from pooldaemon.settings import load_settings
from pooldaemon.spec import load_spec_file

__all__ = ["SECRET_COMMANDS", "add_secret_commands", "run_secret_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SECRET_COMMANDS = frozenset({"keygen", "seal", "reseal", "secrets", "client-key"})
PRIVATE_NAME, PUBLIC_NAME = "pool.key", "pool.pub"
_MAX_SECRET_BYTES = 64 * 1024

Subparsers = argparse._SubParsersAction  # the type add_subparsers() returns


def add_secret_commands(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """Add the secrets subcommands to the ``pooldaemon`` parser."""
    keygen = sub.add_parser(
        "keygen", help="make a sealing key pair: DIR/pool.key (private) and DIR/pool.pub"
    )
    keygen.add_argument("--out", type=Path, required=True, metavar="DIR")
    keygen.add_argument("--force", action="store_true", help="replace an existing pool.key")

    sealer = sub.add_parser("seal", help="seal a secret read from stdin; prints ENC[...]")
    sealer.add_argument("--public-key", type=Path, required=True, metavar="FILE")
    sealer.add_argument(
        "--for",
        dest="context",
        required=True,
        metavar="CONTEXT",
        help="where it may be used: providers.<id> or clients.<name>",
    )

    reseal = sub.add_parser(
        "reseal", help="seal every sealed value of a YAML file again to a new key, in place"
    )
    reseal.add_argument("path", type=Path, metavar="FILE")
    reseal.add_argument("--public-key", type=Path, required=True, metavar="NEW")
    _key_option(reseal)

    secrets = sub.add_parser("secrets", help="sealed values: `secrets check FILE`")
    actions = secrets.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="open every sealed value of a file; exit 1 if any fails (prints no secret)"
    )
    check.add_argument("path", type=Path, metavar="FILE")
    _key_option(check)

    client = sub.add_parser(
        "client-key", help="make a client key; prints it once and its clients: entry"
    )
    client.add_argument("name", metavar="NAME")


def _key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a private key file (repeatable), besides POOLDAEMON_SECRET_KEY_FILES and "
        "$CREDENTIALS_DIRECTORY/pool.key*",
    )


def run_secret_command(args: argparse.Namespace) -> int:
    """Run the secrets command ``args.command``; returns the exit code."""
    try:
        if args.command == "keygen":
            return _keygen(args.out, args.force)
        if args.command == "seal":
            return _seal(args.public_key, args.context)
        if args.command == "reseal":
            return _reseal(args.path, args.public_key, args.key)
        if args.command == "secrets":
            return _check(args.path, args.key)
        return _client_key(args.name)
    except (SealingKeyError, SealedValueError) as exc:
        print(f"pooldaemon: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _keygen(out: Path, force: bool) -> int:
    private_path, public_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    if private_path.exists() and not force:
        print(
            f"pooldaemon: {private_path} exists; --force replaces it (values sealed to it "
            "then no longer open: reseal them first)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    key = generate_private_key()
    try:
        write_key_pair(
            private_path, private_key_text(key), public_path, public_key_text(key.public_key)
        )
    except OSError as exc:
        print(f"pooldaemon: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(public_key_text(key.public_key))
    print(
        f"wrote {private_path} (mode 0600: keep it out of git; the daemon reads it) and "
        f"{public_path} (commit it); key id {key_id(key.public_key)}",
        file=sys.stderr,
    )
    return EXIT_OK


def _load_public_key(path: Path) -> PublicKey:
    return parse_public_key(read_key_file(path), str(path))


def _seal(public_key_path: Path, context: str) -> int:
    check_context(context)
    key = _load_public_key(public_key_path)
    secret = _read_secret()
    if secret is None:
        return EXIT_USAGE
    print(seal(key, context, secret))
    return EXIT_OK


def _read_secret() -> str | None:
    """One secret from stdin (prompted without echo on a terminal), one trailing
    newline removed; None (after saying why) when it is unusable."""
    if sys.stdin.isatty():
        text = getpass.getpass("secret (not echoed): ")
    else:
        raw = sys.stdin.buffer.read(_MAX_SECRET_BYTES + 1)
        if len(raw) > _MAX_SECRET_BYTES:
            print("pooldaemon: the secret on stdin is too large", file=sys.stderr)
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            print("pooldaemon: the secret on stdin is not UTF-8 text", file=sys.stderr)
            return None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        print("pooldaemon: no secret on stdin", file=sys.stderr)
        return None
    return text


def _keyring(extra: list[Path]) -> Keyring:
    keyring = keyring_from_settings(load_settings(), extra_files=extra)
    for warning in keyring.warnings:
        print(f"pooldaemon: warning: {warning}", file=sys.stderr)
    return keyring


def _reseal(path: Path, public_key_path: Path, extra: list[Path]) -> int:
    public_key = _load_public_key(public_key_path)
    keyring = _keyring(extra)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        print(f"{path}: cannot read the file: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        result = reseal_bytes(raw, str(path), keyring, public_key)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{path}: not changed", file=sys.stderr)
        return EXIT_FAILED
    if result.changed:
        try:
            write_in_place(path, result.data)
        except OSError as exc:
            print(f"{path}: cannot write the file: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
    print(
        f"{path}: resealed {len(result.changed)} value(s) to key id {result.key_id}"
        + (f"; {len(result.unchanged)} already sealed to it" if result.unchanged else "")
    )
    return EXIT_OK


def _check(path: Path, extra: list[Path]) -> int:
    keyring = _keyring(extra)
    try:
        loaded = load_spec_file(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_FAILED
    checks = verify_sealed(loaded, keyring)
    failed = 0
    for check in checks:
        if check.issue is not None:
            failed += 1
            print(check.issue, file=sys.stderr)
        else:
            assert check.envelope is not None
            print(loaded.issue_at(check.field.loc, f"ok (key id {check.envelope.key_id})"))
    held = ", ".join(keyring.key_ids) or "none"
    print(
        f"{path}: {len(checks)} sealed value(s), {len(checks) - failed} ok, {failed} failed "
        f"(private keys loaded: {held})"
    )
    return EXIT_FAILED if failed else EXIT_OK


def _client_key(name: str) -> int:
    key = new_client_key()
    try:
        entry = client_entry(name, key)
    except ValueError as exc:
        print(f"pooldaemon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(key)
    print(entry)
    print(
        "the key above is shown once: give it to the client; paste the entry under clients:",
        file=sys.stderr,
    )
    return EXIT_OK
