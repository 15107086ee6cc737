"""The user-facing errors: each message names the bad value and the fix."""


class ConfigError(ValueError):
  """A user error in the config; the message names the field, value and fix."""


class DataError(ValueError):
  """A user-facing data problem (missing dataset, empty split, bad record)."""
