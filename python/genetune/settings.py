"""Defaults read from ``GENETUNE_*`` environment variables. Precedence: arguments > environment > defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """genetune's settings. Read when a search starts, never at import time."""

    model_config = SettingsConfigDict(env_prefix="GENETUNE_", frozen=True, extra="ignore")

    cache_folder: Path = Field(
        default=Path.home() / ".cache" / "genetune",
        description="Where searches keep their run folders (checkpoint + evaluation log).",
    )
    process_start_method: Literal["fork", "forkserver", "spawn"] = Field(
        default="forkserver", description="multiprocessing start method of the process workers."
    )
    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI for the MLflow tracker.")
    disable_progress_bar: bool = Field(default=False, description="Turn the progress bar off everywhere.")


def get_settings() -> Settings:
    """The settings as the environment says now."""
    return Settings()
