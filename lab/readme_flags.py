"""Print the README's flag reference for main.py, generated from its argparse parser.

    python lab/readme_flags.py        # paste between the <!-- flags --> markers of README.md

tests/test_readme.py checks that the README holds exactly this table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from main import get_args_parser  # noqa: E402


def flag_table(parser: argparse.ArgumentParser) -> str:
    rows = ["| flag | default | meaning |", "| --- | --- | --- |"]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[0]
        if action.choices:
            flag += " {" + ",".join(action.choices) + "}"
        elif action.nargs == 2:
            flag += " " + " ".join(action.metavar)
        elif action.nargs != 0:
            flag += " " + action.dest.upper()
        default = (
            ""
            if action.default is None or action.default is False or action.default == ""
            else f"`{action.default}`"
        )
        if isinstance(action.default, tuple | list):
            default = "`" + " ".join(str(v) for v in action.default) + "`"
        meaning = (action.help or "").replace("|", "/").replace("<", "&lt;").replace(">", "&gt;")
        rows.append(f"| `{flag}` | {default} | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(flag_table(get_args_parser()))
