"""The one configuration error of every deployable (the service's and the prober's).

Both configurations are built by pure functions that collect every bad entry before raising,
so a user fixes them all in one go; the CLI prints the message as it is.

>>> print(ConfigError(["FAIRGATE_POLICY='x': must be one of ...", "FAIRGATE_GC: ..."]))
invalid configuration:
  - FAIRGATE_POLICY='x': must be one of ...
  - FAIRGATE_GC: ...
"""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(ValueError):
    """Every bad entry of one configuration, each on its own line; ``problems`` lists them.

    ``subject`` names the configuration in the first line (``prober configuration``).
    """

    def __init__(self, problems: Sequence[str], subject: str = "configuration") -> None:
        self.problems = list(problems)
        super().__init__(f"invalid {subject}:\n" + "\n".join(f"  - {p}" for p in self.problems))
