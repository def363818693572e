"""Regenerate what is written from the device-type registry and the schema (`make docs`):
the schema's device-type parts, manifest.json's device_types, setup.json's board parts, docs/architecture.md's table of
device types and README.md's config reference (shared/generated.py says which parts)."""
from __future__ import annotations

from shared.generated import ROOT, write_all


def main() -> None:
    changed = write_all()
    print("updated " + (", ".join(str(p.relative_to(ROOT)) for p in changed) if changed else "nothing (all current)"))


if __name__ == "__main__":
    main()
