"""Sealed secrets: provider keys encrypted to the daemon's public key, kept in git.

``pooldaemon keygen`` makes an X25519 key pair (the private key stays on the
server, the public key goes in the repository); ``pooldaemon seal`` encrypts a
secret for one place in the YAML (``ENC[v1:<key id>:<context>:<data>]``, see
``_sealing``); the daemon opens every sealed value when it loads the file and
refuses the file if one does not open where it sits (``_fields``); ``pooldaemon
reseal`` moves a file to a new key in place (``_reseal``). Private keys come from
files and systemd credentials (``_keyring``).
"""

from __future__ import annotations

from pooldaemon.secrets._client_key import (
    CLIENT_KEY_PREFIX,
    client_entry,
    client_key_sha256,
    new_client_key,
)
from pooldaemon.secrets._commands import (
    SECRET_COMMANDS,
    add_secret_commands,
    run_secret_command,
)
from pooldaemon.secrets._fields import (
    FieldCheck,
    SealedField,
    check_field,
    sealed_fields,
    unseal_keys,
    verify_sealed,
)
from pooldaemon.secrets._keyfile import (
    generate_private_key,
    key_id,
    parse_private_key,
    parse_public_key,
    private_key_text,
    public_key_text,
)
from pooldaemon.secrets._keyring import (
    CREDENTIAL_GLOB,
    Keyring,
    keyring_from_settings,
    load_keyring,
)
from pooldaemon.secrets._reseal import Resealed, reseal_bytes, write_in_place
from pooldaemon.secrets._sealing import (
    FORMAT_VERSION,
    Envelope,
    check_context,
    check_envelope,
    open_sealed,
    parse_envelope,
    seal,
)

__all__ = [
    "CLIENT_KEY_PREFIX",
    "CREDENTIAL_GLOB",
    "FORMAT_VERSION",
    "SECRET_COMMANDS",
    "Envelope",
    "FieldCheck",
    "Keyring",
    "Resealed",
    "SealedField",
    "add_secret_commands",
    "check_context",
    "check_envelope",
    "check_field",
    "client_entry",
    "client_key_sha256",
    "generate_private_key",
    "key_id",
    "keyring_from_settings",
    "load_keyring",
    "new_client_key",
    "open_sealed",
    "parse_envelope",
    "parse_private_key",
    "parse_public_key",
    "private_key_text",
    "public_key_text",
    "reseal_bytes",
    "run_secret_command",
    "seal",
    "sealed_fields",
    "unseal_keys",
    "verify_sealed",
    "write_in_place",
]
