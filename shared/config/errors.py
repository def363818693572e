"""The one exception of the config package: every reason an instance cannot start, at once."""
from __future__ import annotations


class ConfigError(Exception):
    """The instance cannot start: ``problems`` lists every reason, one sentence each."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            text = head + self.problems[0]
        else:
            text = head + f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)
