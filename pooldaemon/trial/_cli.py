"""``pooldaemon license``: licence signing keys, and licences for tests and operators.

- ``license keygen --out DIR``: ``DIR/licence.key`` (private, mode 0600) and
  ``DIR/licence.pub`` (for the daemons' ``trial_public_keys``); prints the key id.
- ``license sign --private-key FILE (--key KEY | --key-file FILE) --url URL
  --token-limit N --days D [--format F] [--model M] [--provider ID] [--subject S]``:
  prints the licence. The licence carries the trial key (that is what it is
  for), so it is a secret like the key itself; nothing else is printed of it.
- ``license verify [LICENCE] [--public-key FILE]...``: checks a licence (from the
  argument or stdin) against public keys (default: ``trial_public_keys``) and
  prints its claims as JSON, without the key.

Exit codes: 0 done, 1 the licence is refused (or a key file exists), 2 a usage
problem (an unusable key file or argument).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pooldaemon._keyfiles import write_key_pair
from pooldaemon.errors import LicenceError
from pooldaemon.settings import load_settings
from pooldaemon.trial._keys import (
    generate_private_key,
    key_id,
    load_private_key,
    load_trusted_keys,
    private_key_text,
    public_key_text,
)
from pooldaemon.trial._licence import FORMATS, MAX_LICENCE_CHARS, iso, sign, verify

__all__ = ["LICENCE_COMMAND", "add_licence_command", "run_licence_command"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
LICENCE_COMMAND = "license"
PRIVATE_NAME, PUBLIC_NAME = "licence.key", "licence.pub"
_MAX_KEY_CHARS = 16 * 1024

Subparsers = argparse._SubParsersAction  # the type add_subparsers() returns


def add_licence_command(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """Add ``license`` and its actions to the ``pooldaemon`` parser."""
    parser = sub.add_parser(
        LICENCE_COMMAND, help="trial licences: `license keygen`, `license sign`, `license verify`"
    )
    actions = parser.add_subparsers(dest="license_command", required=True, metavar="ACTION")

    keygen = actions.add_parser(
        "keygen", help="make a licence signing key pair: DIR/licence.key and DIR/licence.pub"
    )
    keygen.add_argument("--out", type=Path, required=True, metavar="DIR")
    keygen.add_argument("--force", action="store_true", help="replace an existing licence.key")

    signer = actions.add_parser("sign", help="print a trial licence signed with a private key")
    signer.add_argument("--private-key", type=Path, required=True, metavar="FILE")
    key = signer.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", help="the trial API key (others may see it in `ps`: see --key-file)")
    key.add_argument(
        "--key-file",
        type=Path,
        metavar="FILE",
        help="read the trial API key from FILE ('-': stdin)",
    )
    signer.add_argument("--url", required=True, help="base URL of the trial upstream")
    signer.add_argument("--token-limit", type=int, required=True, metavar="N")
    signer.add_argument("--days", type=float, required=True, metavar="D", help="valid for D days")
    signer.add_argument("--format", default="openai", choices=FORMATS)
    signer.add_argument("--model", help="the default model (routable before any catalog refresh)")
    signer.add_argument("--provider", metavar="ID", help="provider id it creates (default: trial)")
    signer.add_argument("--subject", help="to whom it is issued (shown in status)")

    checker = actions.add_parser(
        "verify", help="check a licence; print its claims as JSON (never the key)"
    )
    checker.add_argument("licence", nargs="?", default="-", help="the licence ('-': stdin)")
    checker.add_argument(
        "--public-key", type=Path, action="append", default=[], metavar="FILE",
        help="a trusted public key file (repeatable; default: POOLDAEMON_TRIAL_PUBLIC_KEYS)",
    )  # fmt: skip


def run_licence_command(args: argparse.Namespace) -> int:
    """Run ``license ACTION``; returns the exit code."""
    try:
        if args.license_command == "keygen":
            return _keygen(args.out, args.force)
        if args.license_command == "sign":
            return _sign(args)
        return _verify(args.licence, args.public_key)
    except LicenceError as exc:
        print(f"pooldaemon: {exc}", file=sys.stderr)
        return EXIT_REFUSED if exc.kind != "key_file" else EXIT_USAGE


def _keygen(out: Path, force: bool) -> int:
    private_path, public_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    if private_path.exists() and not force:
        print(
            f"pooldaemon: {private_path} exists; --force replaces it (licences signed with it "
            "are then refused once daemons trust only the new key)",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    key = generate_private_key()
    try:
        write_key_pair(
            private_path, private_key_text(key), public_path, public_key_text(key.public_key())
        )
    except OSError as exc:
        print(f"pooldaemon: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    kid = key_id(key.public_key())
    print(kid)
    print(
        f"wrote {private_path} (mode 0600: keep it secret, it issues licences) and "
        f"{public_path} (daemons trust it with POOLDAEMON_TRIAL_PUBLIC_KEYS); key id {kid}",
        file=sys.stderr,
    )
    return EXIT_OK


def _read_text(path: Path | None, what: str, limit: int) -> str:
    """Text from ``path`` ('-' or None: stdin), stripped; raises LicenceError."""
    try:
        if path is None or str(path) == "-":
            text = sys.stdin.read(limit + 1)
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read(limit + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise LicenceError("key_file", f"cannot read the {what} from {path}: {reason}") from None
    if len(text) > limit:
        raise LicenceError("key_file", f"the {what} given is too long")
    return text.strip()


def _sign(args: argparse.Namespace) -> int:
    if args.token_limit <= 0 or args.days <= 0:
        print("pooldaemon: --token-limit and --days must be positive", file=sys.stderr)
        return EXIT_USAGE
    private_key = load_private_key(args.private_key)
    trial_key = (
        args.key if args.key is not None else _read_text(args.key_file, "key", _MAX_KEY_CHARS)
    )
    issued = int(time.time())
    expires = issued + round(args.days * 86_400)
    licence = sign(
        private_key,
        key=trial_key,
        url=args.url,
        token_limit=args.token_limit,
        issued_at=issued,
        expires_at=expires,
        format=args.format,
        model=args.model,
        provider=args.provider,
        subject=args.subject,
    )
    print(licence)
    print(
        f"signed with key id {key_id(private_key.public_key())}: {args.token_limit} tokens at "
        f"{args.url}, valid until {iso(expires)}; the licence holds the trial key: keep it "
        "as secret as the key itself",
        file=sys.stderr,
    )
    return EXIT_OK


def _verify(source: str, public_keys: list[Path]) -> int:
    text = _read_text(None, "licence", MAX_LICENCE_CHARS) if source == "-" else source
    paths = public_keys or list(load_settings().trial_public_keys)
    licence = verify(text, load_trusted_keys(paths), time.time())
    claims = {
        "licence_id": licence.id,
        "kid": licence.kid,
        "provider": licence.provider,
        "url": licence.url,
        "format": licence.format,
        "model": licence.model,
        "subject": licence.subject,
        "token_limit": licence.token_limit,
        "issued_at": iso(licence.issued_at),
        "expires_at": iso(licence.expires_at),
    }
    print(json.dumps(claims, indent=2))
    return EXIT_OK
