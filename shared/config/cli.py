"""``python -m shared.config check [FILE]`` and ``python -m shared.config reference``.

``check`` prints ``FILE: OK, <summary>`` on stdout and exits 0, or every problem on stderr and
exits 1; a wrong command line exits 2.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from shared.config.build import build_settings
from shared.config.env import default_instances_dir, merged_environment
from shared.config.errors import ConfigError
from shared.config.load import read_document
from shared.config.model import Settings
from shared.config.validate import validate_document


def summary(settings: Settings) -> str:
    by_type: dict[str, int] = {}
    for device in settings.devices:
        by_type[device.type] = by_type.get(device.type, 0) + 1
    types = ", ".join(f"{n} {t}" for t, n in sorted(by_type.items()))

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return (f"instance {settings.instance_id} ({settings.connector_type}): {count(len(settings.devices), 'device')}"
            f" ({types}), {count(len(settings.boards), 'serial board')}, "
            f"{count(len(settings.endpoints), 'HTTP endpoint')}, {count(len(settings.groups), 'group')}, "
            f"{count(len(settings.automations), 'window automation')}")


def check_file(path: Path, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(ok, report) for ``python -m shared.config check``."""
    env = merged_environment(environ)
    try:
        doc = read_document(path)
        problems = validate_document(doc, instance_name=(env.get("INSTANCE_NAME") or "").strip() or None,
                                     file_stem=path.stem)
        if problems:
            raise ConfigError(problems, source=str(path))
        settings = build_settings(doc, env, config_file=path)
    except ConfigError as exc:
        return False, str(exc)
    return True, f"{path}: OK, {summary(settings)}"


def main(argv: list[str] | None = None) -> int:
    from shared.reference import config_reference  # only the CLI needs it

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "reference":
        print(config_reference(), end="")
        return 0
    if not args or args[0] != "check" or len(args) > 2:
        print("usage: python -m shared.config check [FILE]\n"
              "       python -m shared.config reference", file=sys.stderr)
        return 2
    if len(args) == 2:
        path = Path(args[1])
    else:
        env = merged_environment()
        instance = (env.get("INSTANCE_NAME") or "").strip()
        if not instance:
            print("INSTANCE_NAME is not set; name the file: python -m shared.config check FILE", file=sys.stderr)
            return 1
        path = default_instances_dir(env) / f"{instance}.json"
    ok, report = check_file(path)
    print(report, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
