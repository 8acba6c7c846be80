"""Settings read from the environment: sizes with units, and clear errors on bad values."""

from __future__ import annotations

import pytest

from process_mcp.core.settings import GIB, KIB, MIB, Settings, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1073741824", GIB),
        ("512K", 512 * KIB),
        ("512k", 512 * KIB),
        ("100MB", 100 * MIB),
        ("1.5G", GIB + GIB // 2),
        ("2GiB", 2 * GIB),
        (" 3 M ", 3 * MIB),
        ("0", 0),
    ],
)
def test_sizes_accept_plain_bytes_and_binary_suffixes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["-1", "1X", "G", "1.2.3", "lots", "1e9", "1iB"])
def test_sizes_refuse_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_disk_cap_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROCESS_MCP_DISK_CAP", raising=False)
    assert Settings.from_env().disk_cap == GIB
    monkeypatch.setenv("PROCESS_MCP_DISK_CAP", "256M")
    assert Settings.from_env().disk_cap == 256 * MIB
    monkeypatch.setenv("PROCESS_MCP_DISK_CAP", "a lot")
    with pytest.raises(ValueError, match=r"PROCESS_MCP_DISK_CAP='a lot' is not a size.*512M"):
        Settings.from_env()
