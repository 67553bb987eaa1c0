"""The ``cifake`` command: the parser assembled from ``commands.NAMES``, and the exit-code policy.

Each command's options and its run live in ``cifake/commands/NAME.py``. TensorFlow is imported only
inside the commands' ``run``, so ``cifake --help`` and ``cifake SUB --help`` are instant.

Exit codes (one place for all subcommands): 0 success; 2 user error (one line per problem on
stderr, no traceback unless ``--debug``); 1 anything unexpected; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import signal
import sys
import traceback

from . import __version__, commands
from .base import limits, logs, renames, signals, text
from .base.errors import UserError

LABELS_NOTE = "Labels: FAKE = 1 is the positive class everywhere (P(FAKE), precision, recall, CSV columns)."


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where it says something: not for None/False, not for positionals,
    and not where the help already explains the default in words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in ``commands.NAMES``, each with the options its module adds."""
    parser = argparse.ArgumentParser(
        prog="cifake",
        description=(
            "Train, evaluate and use detectors of AI-generated images on CIFAKE "
            "(CIFAR-10 photos = REAL, Stable Diffusion 1.4 images = FAKE, 32x32).\n\n" + LABELS_NOTE
        ),
        epilog=(
            "examples:\n"
            "  cifake download --archive cifake.zip      # or: cifake download (Kaggle)\n"
            "  cifake train --config configs/small_cnn.yaml train.epochs=5\n"
            "  cifake evaluate runs/small_cnn\n"
            "  cifake predict photos/ --out predictions.csv"
        ),
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"cifake {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's own logging")
    _verbosity_options(parser, None)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in commands.NAMES:
        module = commands.load(name)
        p = subs.add_parser(
            name,
            help=module.HELP,
            description=f"{module.DESCRIPTION}\n\n{LABELS_NOTE}",
            epilog=f"example:\n  {module.EXAMPLE}",
            formatter_class=_Formatter,
            allow_abbrev=False,  # a stray '--d' must not turn on --debug (or any other option) by prefix
        )
        # --debug is accepted after the subcommand too; SUPPRESS keeps the global value when absent.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        _verbosity_options(p, argparse.SUPPRESS)
        module.add_arguments(p)
    return parser


def _verbosity_options(parser: argparse.ArgumentParser, default) -> None:
    """--quiet / --verbose, before or after the subcommand (SUPPRESS after it keeps the global value)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default or False, help="print warnings and errors only"
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default or False, help="print debugging details too"
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that the same clean-up as Ctrl-C runs (exit 143)."""


def _on_sigterm(signum, frame):
    raise Terminated


def _signals():
    """Ctrl-C and SIGTERM stop every command, cleanly, at any stage.

    A shell without job control starts background jobs with SIGINT ignored, and Python keeps an
    ignored SIGINT: `cifake train &` in a script would never stop on Ctrl-C or `kill -INT`. SIGTERM
    (`timeout`, `kill`, a scheduler) gets the same clean-up as Ctrl-C. The caller's handlers come back after.
    """
    return signals.handlers({signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _on_sigterm})


def _safe_streams() -> None:
    """A terminal or pipe that cannot encode a file name (PYTHONIOENCODING=ascii) gets \\xNN, not a crash midway."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="backslashreplace")


def _os_error_line(e: OSError) -> str | None:
    """One line for the OSErrors a user can fix (full disk, a name too long); None for the others."""
    where = f" ({text.shorten(text.printable(str(e.filename)), 120)})" if e.filename else ""
    if e.errno == errno.ENOSPC:
        return f"no space left on the device{where}: free some space and run it again"
    if e.errno == errno.ENAMETOOLONG:
        return f"a file name or path is too long for the file system{where}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        # key=value overrides may come after options (`--name x train.epochs=3`): argparse leaves
        # those as extras, which are taken as overrides where the subcommand has them.
        args, extras = parser.parse_known_args(argv)
        if extras and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extras):
            args.overrides = [*args.overrides, *extras]
        elif extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as e:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(e.code or 0)
    if args.debug:
        os.environ["CIFAKE_DEBUG"] = "1"  # tfutil then leaves TensorFlow's start-up logs alone
    _safe_streams()
    verbosity = "quiet" if args.quiet else "verbose" if args.verbose else "normal"
    renames.forget()
    with _signals(), logs.routed(verbosity):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command, and the exit-code policy: 0, 2 (user error), 1 (unexpected), 130 (Ctrl-C), 143 (SIGTERM)."""

    def error(line: str) -> None:
        print(f"cifake {args.command}: error: {line}", file=sys.stderr)

    try:
        if getattr(args, "max_megapixels", None):
            limits.set_max_megapixels(args.max_megapixels)
        return commands.load(args.command).run(args)
    except UserError as e:
        if args.debug:
            traceback.print_exc()
        for line in e.for_cli().splitlines():
            error(line)
        return 2
    except BrokenPipeError:  # `cifake config | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Terminated:
        print(f"cifake {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"cifake {args.command}: interrupted", file=sys.stderr)
        return 130
    except RecursionError:  # a folder tree, JSON or YAML nested deeper than Python recurses
        error("the input is nested too deeply to read (a folder tree or a JSON/YAML file thousands of levels deep)")
        return 2
    except OSError as e:
        if (line := _os_error_line(e)) is None:
            return _unexpected(args, e)
        if args.debug:
            traceback.print_exc()
        error(line)
        return 2
    except Exception as e:  # noqa: BLE001 - the policy: anything unexpected is exit 1
        return _unexpected(args, e)


def _unexpected(args: argparse.Namespace, e: Exception) -> int:
    if args.debug:
        traceback.print_exc()
    else:
        message = text.shorten(text.printable(str(e)), 300)
        print(
            f"cifake {args.command}: unexpected error: {type(e).__name__}: {message} (run with --debug for the traceback)",
            file=sys.stderr,
        )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def main_exit() -> None:
    """Console-script entry point: ``sys.exit(main())``."""
    sys.exit(main())
