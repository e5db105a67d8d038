"""A mistake in what the user gave (spec, data file, variable, dimension, split size, model,
port): the one error type the command line reports as one line, without a traceback.

Every layer raises it, or a subclass (the store's, the spec's, the model's): the data sets sit
at the bottom, so it lives here. Anything else that escapes a command is a bug.
"""

from __future__ import annotations


class UserError(ValueError):
    """``FIELD: what is wrong (what would fix it)``.

    Attributes:
        field: what the user gave that is wrong: a spec field (``data.params.url``), an
            argument (``MODEL``, ``--port``) or a file.
        problem: what is wrong with it.
        fix: what would fix it, or "" when the problem says it.

    ``UserError("data.params.url: x.nc does not exist")``, a whole message, is read as
    ``FIELD: problem``; ``UserError(field, problem, fix)`` composes one.
    """

    def __init__(self, field: str, problem: str | None = None, fix: str = "") -> None:
        if problem is None:  # a whole message: its field is what comes before the first ': '
            field, sep, problem = field.partition(": ")
            if not sep:
                field, problem = "", field
        self.field, self.problem, self.fix = field, problem, fix
        message = f"{field}: {problem}" if field else problem
        super().__init__(f"{message} ({fix})" if fix else message)

    def __reduce__(self):  # pickled across Ray processes whatever a subclass's __init__ takes
        return _rebuild, (type(self), self.field, self.problem, self.fix)

    def line(self) -> str:
        """The message on one line (a multi-line message's lines joined by '; ')."""
        parts = [p.strip() for p in str(self).splitlines()]
        return "; ".join(p for p in parts if p).replace(":;", ":")


def _rebuild(cls: type[UserError], field: str, problem: str, fix: str) -> UserError:
    error = cls.__new__(cls)
    UserError.__init__(error, field, problem, fix)
    return error


class DataAssumption(UserWarning):
    """What was assumed about the user's data to read it (e.g. a time axis whose reference date
    is ambiguous): ``FIELD: what was assumed (what would make it certain)``, one console line."""
