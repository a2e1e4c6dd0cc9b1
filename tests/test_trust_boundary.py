"""A run folder holds pickles: resume loads none of those the caller passes again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import genetune as gt
from genetune.checkpoint import CHECKPOINT_FILE, encode_bytes

import objectives as obj


class _Planted:
    """Unpickling it makes a folder (what a crafted checkpoint could do with any command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _crafted_folder(tmp_path: Path) -> tuple[Path, Path]:
    search = gt.Search(obj.quadratic, obj.SPACE, gt.SearchConfiguration(generations=2, pool_size=6, seed=1), worker_type="sequential",
                       cache_folder=tmp_path, disable_progress_bar=True, constraints=["x >= -4", lambda p: p["x"] != 0])  # fmt: skip
    search.start()
    assert search.run_folder is not None
    marker = tmp_path / "ran"
    planted = encode_bytes(cloudpickle.dumps(_Planted(marker)))
    checkpoint = search.run_folder / CHECKPOINT_FILE
    payload = json.loads(checkpoint.read_text())
    payload.update(objective=planted, worker={"pickled": planted}, trackers={"pickled": [planted], "left_out": []}, constraint_functions=planted)
    checkpoint.write_text(json.dumps(payload))
    return search.run_folder, marker


def test_resume_unpickles_nothing_the_caller_passes(tmp_path: Path) -> None:
    folder, marker = _crafted_folder(tmp_path)
    result = gt.Search.resume(folder, obj.quadratic, worker_type="sequential", trackers=[], constraints=[lambda p: p["x"] != 0], disable_progress_bar=True)
    assert not marker.exists()
    assert len(result.get_results()) == 12 and all(p["x"] != 0 and p["x"] >= -4 for p in result.get_results()["params"])


@pytest.mark.parametrize("left_to_the_folder", ["objective_function", "worker_type", "trackers", "constraints"])
def test_what_the_caller_leaves_out_comes_from_the_folder(tmp_path: Path, left_to_the_folder: str) -> None:
    """The trust boundary as documented: what is not passed is unpickled from the folder."""
    folder, marker = _crafted_folder(tmp_path)
    given: dict[str, Any] = {"objective_function": obj.quadratic, "worker_type": "sequential", "trackers": [], "constraints": [lambda p: True]}
    del given[left_to_the_folder]
    try:
        gt.Search.resume(folder, disable_progress_bar=True, **given)
    except Exception:  # the planted pickle is not an objective, a worker, ...: what matters is that it ran
        pass
    assert marker.exists()
