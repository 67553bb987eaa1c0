"""Exceptions that map onto the CLI's exit codes (see ``cli.main``)."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: bad config, missing data, missing credentials, corrupt archive.

    The CLI prints the message (one line per problem) and exits with code 2, without a traceback
    unless ``--debug`` is given. Messages say what was received and what would fix it.

    The library speaks of values, not of command-line flags: where a message names a parameter the
    caller chose, it writes ``{name}`` and lists ``name`` in ``options``. ``str(error)`` (what a
    Python caller sees) writes the parameter as it is (``max_megapixels``); ``for_cli()`` (what the
    CLI prints) writes the flag that sets it (``--max-megapixels``).
    """

    def __init__(self, message: str, *, options: tuple[str, ...] = ()):
        self.template = message
        self.options = options
        super().__init__(self._fill(lambda name: name))

    def _fill(self, spell) -> str:
        text = self.template
        for name in self.options:
            text = text.replace("{" + name + "}", spell(name))
        return text

    def for_cli(self) -> str:
        """The message with each parameter written as the command-line flag that sets it."""
        return self._fill(lambda name: "--" + name.replace("_", "-"))


class ConfigError(UserError):
    """A config file, key or value is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
