"""One-line errors for user mistakes in ``taae``, ``train.py`` and ``evaluate.py``; tracebacks only with ``--debug``.

A user error (a missing file, a bad value, a config key typo, a full disk, a refused checkpoint, a diverged run)
prints ``<prog>: error: <what, naming the file, key or value>`` and exits with :data:`EXIT_USER_ERROR`; anything
else is a bug and keeps its traceback. ``--debug`` anywhere on the command line (or ``TAAE_DEBUG=1``) re-raises
user errors too.

jsonargparse reports a config typo as a nested "does not validate against any of the Union subtypes" tree;
:func:`condense_parser_error` turns it into the key path and the innermost reason
(``model.init_args.discriminator.init_args.filterz: unknown key``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence

__all__ = ["DEBUG_FLAG", "EXIT_INTERRUPTED", "EXIT_USER_ERROR", "USER_ERRORS", "ConfigError", "UserError",
           "condense_parser_error", "one_line", "pop_debug", "run_main"]

DEBUG_FLAG = "--debug"
EXIT_USER_ERROR = 2
"""argparse's exit status for usage errors; every user error uses it."""
EXIT_INTERRUPTED = 130
"""128 + SIGINT, as shells report Ctrl-C."""


class UserError(Exception):
    """An error the user can act on that is neither a bad value nor an OS error (e.g. a diverged run)."""


class ConfigError(UserError):
    """A command-line or config-file error, already reduced to one line naming the key. Not a ValueError: jsonargparse
    catches those internally while it tries alternatives, and this one must reach the command line."""


class UntrustedFileError(ValueError):
    """A file asks for code to run (a pickled global, a class path off the registry, a nested spec); nothing was run."""


class ModelTooLarge(ValueError):
    """A file names a model larger than the weights it holds; refused before the model is allocated."""


USER_ERRORS = (ValueError, OSError, UserError, argparse.ArgumentError)
"""ValueError covers AudioError and UntrustedFileError, UserError ConfigError and TrainingDiverged, OSError a full
disk or a missing file."""

_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value type:",
          "Given value:", "Expected a <class 'NoneType'>", "Problem with given class_path")
_PARSER_KEY = re.compile(r'Parser key "([^"]+)":\s*(.*)')
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")


def condense_parser_error(message: str) -> str:
    """The key path and innermost reason of a jsonargparse error message, on one line."""
    path: list[tuple[int, str]] = []
    found: tuple[list[str], str] | None = None
    for line in message.splitlines():
        stripped = line.lstrip(" -")
        text = stripped.strip()
        if not text:
            continue
        indent = len(line) - len(stripped)
        path = [(i, key) for i, key in path if i < indent]
        key = _PARSER_KEY.fullmatch(text)
        if key:
            path.append((indent, key.group(1)))
            text = key.group(2)
            if not text:
                continue
        if text.startswith(_NOISE):
            continue
        found = ([k for _, k in path], text)
        break
    if found is None:
        return one_line(message)
    keys, text = found
    # Nested keys below a class-typed option are that class's init_args (the YAML's spelling).
    prefix = ".init_args.".join(keys)
    option = _NOT_ACCEPTED.fullmatch(text)
    if option:
        return f"{prefix + '.init_args.' if prefix else ''}{option.group(1)}: unknown key"
    return f"{prefix}: {text}" if prefix else text


def one_line(err: BaseException | str) -> str:
    """An error message on one line (jsonargparse trees condensed, other line breaks joined)."""
    text = str(err)
    if isinstance(err, FileNotFoundError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    if "Does not validate against any of the Union subtypes" in text or "Parser key" in text:
        return condense_parser_error(text)
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip()) or type(err).__name__


def pop_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether it (or ``TAAE_DEBUG=1``) asked for tracebacks."""
    args = list(argv)
    debug = DEBUG_FLAG in args or os.environ.get("TAAE_DEBUG", "") not in ("", "0")
    return [a for a in args if a != DEBUG_FLAG], debug


def run_main(prog: str, run: Callable[[], int | None], debug: bool) -> int:
    """Run a command's body; a user error becomes one line on stderr and exit status 2 (130 for Ctrl-C)."""
    try:
        return int(run() or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"{prog}: error: {one_line(err)} ({DEBUG_FLAG} shows the traceback)", file=sys.stderr)
        return EXIT_USER_ERROR
