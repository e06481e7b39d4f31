"""The errors slmexp raises on bad input, so the CLI can print them without a traceback."""

from __future__ import annotations


class SlmexpError(Exception):
    """Bad input the user can fix: the message names the key, file or line to change."""


class ConfigError(SlmexpError):
    """A config value is wrong; `key` is the dotted config key."""

    def __init__(self, key: str, message: str, origin: str | None = None) -> None:
        self.key = key
        self.origin = origin
        where = f" ({origin})" if origin else ""
        super().__init__(f"{key}: {message}{where}")


class ConfigErrors(ConfigError):
    """Several config values are wrong: all of them, one line each (slmexp.schema collects them in one pass)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.key, "", first.origin)
        self.args = ("\n".join(str(e) for e in self.errors),)

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]


class EndpointError(SlmexpError):
    """An OpenAI-compatible endpoint could not be reached or answered with an error (runtime=openai)."""


class DataError(SlmexpError):
    """A data file is missing or malformed; the message carries file:line."""


class ModelResolutionError(SlmexpError):
    """No source could produce the model's files (each attempt's reason is listed)."""


class ChecksumError(SlmexpError):
    """Weights on disk do not match the pinned sha256."""
