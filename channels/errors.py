"""The one exception type for invalid user input, shared by every package of semcom."""


class ConfigError(ValueError):
    """Invalid argument or configuration value, raised before any work starts.

    The message is one line naming the field, the bad value and what is allowed, e.g.
    ``modulation: '8psk' is not one of bpsk, qpsk, 16qam, 64qam, 256qam``.
    The command-line interface turns it into exit status 2 without a traceback.
    """


def fail(field: str, value: object, allowed: str) -> ConfigError:
    """Build a :class:`ConfigError` with the project's one-line message format."""
    return ConfigError(f"{field}: {value!r} is invalid; allowed: {allowed}")
