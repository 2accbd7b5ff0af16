"""Errors a user can cause and fix. The CLI prints these as one clear line, never a traceback."""


class RiskUserError(Exception):
    """A problem with the user's input, configuration or arguments."""


class InputFileError(RiskUserError):
    """A whole input file is unusable: missing, unreadable, missing a required column, wrong type."""

    def __init__(self, path: str, message: str, column: str | None = None):
        self.path = path
        self.column = column
        where = f"{path}" + (f", column '{column}'" if column else "")
        super().__init__(f"{where}: {message}")


class DefinitionError(RiskUserError):
    """A definitions file (rule set, value set, indicator file...) is malformed."""
