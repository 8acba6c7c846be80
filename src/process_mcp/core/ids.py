"""Short, friendly process ids compatible with the seed's ``nanoid(6)``."""

import secrets
from collections.abc import Container

ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"
ID_LENGTH = 6


def new_id(taken: Container[str]) -> str:
    """Return a random 6-character id not in ``taken`` (the seed never checked for collisions)
    that does not start with ``-``: a person types ids as command arguments
    (``process-mcp stop ID``), where a leading dash reads as an option."""
    while True:
        candidate = "".join(secrets.choice(ALPHABET) for _ in range(ID_LENGTH))
        if candidate not in taken and not candidate.startswith("-"):
            return candidate
