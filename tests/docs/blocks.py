"""The named command blocks of a guide (```` ```bash NAME ````) and its settings block with new values."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

_BLOCK = re.compile(r"^```bash[ \t]*(\S*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_SETTING = re.compile(r"^([A-Z_][A-Z0-9_]*)=(\S*)(.*)$")
KEPT = {"PATH"}  # settings the trial keeps as written


def code_blocks(path: Path) -> dict[str, str]:
    """name -> code of every bash block; a block without a name, or a name used twice, is an error."""
    blocks: dict[str, str] = {}
    for match in _BLOCK.finditer(Path(path).read_text(encoding="utf-8")):
        name, code = match.group(1), match.group(2)
        assert name, f"{path}: a bash block without a name (```bash NAME): {code[:80]!r}"
        assert name not in blocks, f"{path}: two blocks named {name}"
        blocks[name] = code
    return blocks


def with_settings(code: str, values: dict[str, str]) -> str:
    """``code`` (a settings block) with each ``NAME=value`` set to ``values[NAME]``; every setting must
    be given a value here (a guide's real paths are never written to by a test), every value must be used."""
    lines, seen = [], set()
    for line in code.splitlines():
        match = _SETTING.match(line)
        if match and match.group(1) not in KEPT:
            name = match.group(1)
            assert name in values, f"setting {name} has no trial value"
            seen.add(name)
            line = f"{name}={shlex.quote(values[name])}{match.group(3)}"
        lines.append(line)
    assert seen == set(values), f"trial values for settings the guide does not have: {set(values) - seen}"
    return "\n".join(lines)
