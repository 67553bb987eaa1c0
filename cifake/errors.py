"""Exceptions that map onto the CLI's exit codes (see ``cli.main``)."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: bad config, missing data, missing credentials, corrupt archive.

    The CLI prints ``str(error)`` (one line per problem) and exits with code 2, without a traceback
    unless ``--debug`` is given. Messages say what was received and what would fix it.
    """


class ConfigError(UserError):
    """A config file, key or value is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
