"""Bridges to other tuners' formats and drivers. Each module imports its tuner only when loaded
(``import genetune`` imports none of them)."""
