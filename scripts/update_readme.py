"""Regenerate the config reference section of README.md from the schema (`make docs`)."""
from __future__ import annotations

from pathlib import Path

from shared.reference import END, START, config_reference

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    text = README.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(head + config_reference().rstrip("\n") + tail)
    print(f"updated {README.name}")


if __name__ == "__main__":
    main()
