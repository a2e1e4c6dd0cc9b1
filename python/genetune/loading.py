"""Loading what a search needs from text: an objective from an import path or a shell command
template, a search space and a configuration from a dict or a JSON/YAML file. No Prefect here:
the CLI, the gcc job and the flow all load through this module."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML comes with Prefect; its stubs are a separate package
from pydantic import TypeAdapter, ValidationError

from genetune.exceptions import SearchSpaceError
from genetune.metrics import log_metric, parse_metric_lines
from genetune.objectives import is_two_phase
from genetune.search_spaces import Parameter, SearchSpace, space_from_spec

__all__ = ["CommandObjective", "flatten_params", "load_config", "load_objective", "load_search_space", "read_document"]


# ----- objectives --------------------------------------------------------------------------------


def flatten_params(params: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested params as one level of dotted paths: ``{"opt": {"unroll": 4, "f": [1]}}`` gives
    ``opt.unroll`` and ``opt.f.0``."""
    out = {} if out is None else out
    if isinstance(params, Mapping):
        for key, value in params.items():
            flatten_params(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(params, list):
        for i, value in enumerate(params):
            flatten_params(value, f"{prefix}.{i}" if prefix else str(i), out)
    else:
        out[prefix] = params
    return out


def _format_fields(params: Any) -> dict[str, Any]:
    """A command template's fields: every dotted path, and the leaf name alone too (``unroll``
    for ``opt.unroll``) unless two leaves share it."""
    flat = flatten_params(params)
    leaves: dict[str, list[Any]] = {}
    for path, value in flat.items():
        leaves.setdefault(path.rsplit(".", 1)[-1], []).append(value)
    fields = {leaf: values[0] for leaf, values in leaves.items() if len(values) == 1}
    fields.update(flat)
    return fields


_SCORE_LINE = re.compile(r"^GENETUNE_SCORE\s*=\s*(\S+)\s*$", re.MULTILINE)
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


#: Shells whose ``-c`` argument is a script: a value there would be code whatever the quoting.
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh"})
_COMMAND_SEPARATORS = frozenset({";", "&", "&&", "|", "||", "(", ")", "\n", ";;", "|&"})


def _shell_quoted(value: Any, quote: str | None) -> str:
    """A value as one literal shell word where it stands: quoted by :func:`shlex.quote`, first
    closing the quotes the template opened around it (and reopening them after)."""
    text = "" if value is None else str(value)
    if not text:  # a knocked-out parameter: nothing
        return ""
    word = shlex.quote(text)
    return word if quote is None else f"{quote}{word}{quote}"


def _substitute(template: str, fields: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` replaced by its quoted value, tracking the shell's
    quoting (none, '...', "...") so a value is literal whatever quotes surround it."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(template):
        c = template[i]
        match = _PLACEHOLDER.match(template, i) if c == "{" else None
        if match is not None:
            out.append(_shell_quoted(fields.get(match.group(1), ""), quote))
            i = match.end()
            continue
        if c == "\\" and quote != "'":  # an escaped character stays as written
            out.append(template[i : i + 2])
            i += 2
            continue
        if quote is None and c in "'\"":
            quote = c
        elif c == quote:
            quote = None
        out.append(c)
        i += 1
    return "".join(out)


def _check_template(template: str) -> None:
    """Refuses a template that hands a placeholder to a shell as code (``sh -c "... {x}"``,
    ``eval {x}``): no quoting can make a value safe there."""
    marked = _PLACEHOLDER.sub(lambda m: f"GENETUNEFIELD{{{m.group(1)}}}", template)
    lexer = shlex.shlex(marked, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as err:
        raise ValueError(f"objective command template {template!r} cannot be parsed as a shell command: {err}") from None
    command: list[str] = []
    for token in [*tokens, ";"]:
        if token not in _COMMAND_SEPARATORS:
            command.append(token)
            continue
        _check_simple_command(template, command)
        command = []


def _check_simple_command(template: str, words: list[str]) -> None:
    for index, word in enumerate(words):
        name = word.rsplit("/", 1)[-1]
        if name == "eval":
            script = [w for w in words[index + 1 :] if "GENETUNEFIELD" in w]
        elif name in _SHELLS:
            flag = next((j for j in range(index + 1, len(words)) if re.fullmatch(r"-[a-zA-Z]*c[a-zA-Z]*", words[j])), None)
            script = [words[flag + 1]] if flag is not None and flag + 1 < len(words) and "GENETUNEFIELD" in words[flag + 1] else []
        else:
            continue
        if script:
            field = re.search(r"GENETUNEFIELD\{([^{}]*)\}", script[0])
            raise ValueError(
                f"objective command template {template!r}: the placeholder {{{field.group(1) if field else ''}}} is inside a script "
                f"that {name} runs as shell code, where no quoting keeps a value from running; pass it as an argument "
                f"instead, e.g. sh -c 'bench --flag \"$1\"' sh {{{field.group(1) if field else 'flag'}}}"
            )


class CommandObjective:
    """A shell command as an objective (picklable: it travels to Dask workers).

    ``template`` is formatted with the candidate's flattened params: ``{unroll}`` or
    ``{opt.unroll}`` for nested keys (a leaf name alone works when it is unique). A key the
    candidate lacks (knocked out) formats as an empty string. The score is the value of a line
    ``GENETUNE_SCORE=value`` on stdout, else the last number printed; ``GENETUNE_METRIC name=value``
    lines become metrics. A non-zero exit status raises (the candidate becomes INVALID).

    **Values never run as code.** The template is a ``/bin/sh`` command line (pipes, ``&&`` and
    redirections work); each value is substituted as one literal word, quoted for the place it
    stands: bare, inside ``'...'`` or inside ``"..."`` alike (``$(...)``, backticks and quotes in a
    value are text). A template that would hand a value to a shell as code, a placeholder inside
    the script of ``sh -c``/``bash -c`` or after ``eval``, is refused with ValueError: pass the
    value as an argument (``sh -c 'bench --flag "$1"' sh {flag}``).
    """

    def __init__(self, template: str, timeout: float | None = None, cwd: str | None = None) -> None:
        _check_template(template)
        self.template = template
        self.timeout = timeout
        self.cwd = cwd

    def __repr__(self) -> str:
        return f"CommandObjective({self.template!r})"

    def command(self, params: Any) -> str:
        return _substitute(self.template, _format_fields(params))

    def __call__(self, params: Any) -> float:
        command = self.command(params)
        # Files, not pipes: a background process the command leaves (``server &``) would keep a
        # pipe open and the read waiting; it dies with the evaluation's process group.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            returncode = subprocess.run(command, shell=True, stdout=out, stderr=err, timeout=self.timeout, cwd=self.cwd).returncode
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        if returncode != 0:
            tail = (stderr or stdout).strip()[-300:]
            raise RuntimeError(f"command exited with status {returncode}: {command}: {tail}")
        for name, value in parse_metric_lines(stdout).items():
            log_metric(name, value)
        explicit = _SCORE_LINE.findall(stdout)
        if explicit:
            return float(explicit[-1])
        text = "\n".join(line for line in stdout.splitlines() if not line.startswith("GENETUNE_METRIC"))
        numbers = _FLOAT.findall(text)
        if not numbers:
            raise ValueError(f"command printed no number: {command}")
        return float(numbers[-1])


def load_objective(spec: str | Callable[[Any], Any], kwargs: Mapping[str, Any] | None = None) -> Callable[[Any], Any]:
    """An objective from ``"pkg.module:function"`` (or ``"pkg.module:Class.attr"``), or from a
    shell command template (a string with ``{placeholders}``, see :class:`CommandObjective`).
    A callable is returned as is. With ``kwargs`` (or when the path names a class), the target is
    a factory: the objective is ``target(**kwargs)``, e.g.
    ``load_objective("genetune.jobs.gcc:GccObjective", {"size": "small"})``."""
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"objective_kwargs must be a mapping of keyword arguments, got {type(kwargs).__name__}")
    if callable(spec) and not isinstance(spec, type):
        if kwargs:
            raise ValueError("objective_kwargs apply to an import path or a class, not to a callable objective")
        return spec
    if isinstance(spec, type):
        return _build_objective(spec, kwargs, spec.__name__)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"objective must be 'pkg.module:function' or a command template, got {spec!r}")
    if "{" in spec:
        if kwargs:
            raise ValueError("objective_kwargs do not apply to a command template")
        return CommandObjective(spec)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr or " " in spec:
        raise ValueError(
            f"objective {spec!r} is neither an import path 'pkg.module:function' nor a command template with {{placeholders}}"
        )
    value: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        value = getattr(value, part)
    if not callable(value):
        raise TypeError(f"objective {spec!r} is not callable ({type(value).__name__})")
    if isinstance(value, type) or kwargs is not None:
        return _build_objective(value, kwargs, spec)
    function: Callable[[Any], Any] = value
    return function


def _build_objective(factory: Callable[..., Any], kwargs: Mapping[str, Any] | None, name: str) -> Callable[[Any], Any]:
    try:
        built = factory(**dict(kwargs or {}))
    except TypeError as err:
        raise TypeError(f"objective {name!r} with objective_kwargs {dict(kwargs or {})!r}: {err}") from err
    if not callable(built) and not is_two_phase(built):  # a two-phase objective needs no __call__
        raise TypeError(
            f"objective {name!r} called with objective_kwargs gave {type(built).__name__}, which is neither callable "
            "nor a two-phase objective (build/measure)"
        )
    function: Callable[[Any], Any] = built
    return function


# ----- search spaces and configurations ----------------------------------------------------------

_PARAM_TYPES = {"range", "choice", "literal"}


def read_document(path: str | os.PathLike[str]) -> Any:
    """A JSON or YAML (``.yaml``/``.yml``) file's content; a syntax error is a ValueError naming
    the file, line and column."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{file}: not a text file ({err})") from None
    if file.suffix.lower() in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            problem = " ".join(str(getattr(err, part)) for part in ("context", "problem") if getattr(err, part, None)) or str(err)
            raise ValueError(f"{file}: {where}invalid YAML: {problem}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}") from None


def _is_spec(node: Any) -> bool:
    return isinstance(node, Mapping) and len(node) == 1 and (
        (isinstance(node.get("dict"), list) and all(isinstance(i, list | tuple) and len(i) == 2 for i in node["dict"]))
        or isinstance(node.get("list"), list)
    )


def _friendly(node: Any, path: str) -> Any:
    if isinstance(node, Mapping) and node.get("type") in _PARAM_TYPES and not isinstance(node.get("type"), Mapping):
        try:
            return TypeAdapter(Parameter).validate_python(dict(node))
        except ValidationError as err:
            raise SearchSpaceError(f"search_space{path}: {err}") from None
    if isinstance(node, Mapping) and isinstance(node.get("type"), str) and {"start", "end", "values", "value"} & set(node):
        raise SearchSpaceError(
            f"search_space{path}: unknown parameter type {node['type']!r} (expected one of {', '.join(sorted(_PARAM_TYPES))})"
        )
    if isinstance(node, Mapping):
        return {str(k): _friendly(v, f"{path}[{k!r}]") for k, v in node.items()}
    raise SearchSpaceError(f"search_space{path}: expected a parameter {{'type': 'range'|'choice'|'literal', ...}} or a dict, got {node!r}")


def load_search_space(space: Mapping[str, Any] | Sequence[Any] | str | os.PathLike[str]) -> SearchSpace:
    """A search space from a JSON/YAML file or a dict: genetune's spec form
    (``compile_space``'s ``{"dict": [[key, node], ...]}``) or the friendly form
    ``{"x": {"type": "range", "start": 0, "end": 9}, "opt": {"level": {"type": "choice", "values": [...]}}}``
    (a list of such dicts for a list space)."""
    if isinstance(space, str | os.PathLike):
        space = read_document(space)
    if _is_spec(space):
        assert isinstance(space, Mapping)
        rebuilt: SearchSpace = space_from_spec(space)
        return rebuilt
    if isinstance(space, Mapping):
        friendly: SearchSpace = _friendly(space, "")
        return friendly
    if isinstance(space, list | tuple):
        return [_friendly(element, f"[{i}]") for i, element in enumerate(space)]
    raise TypeError(f"search_space must be a dict, a list or a path to a JSON/YAML file, got {type(space).__name__}")


def load_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A search configuration from a dict or a JSON/YAML file."""
    if isinstance(config, str | os.PathLike):
        config = read_document(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"search_config must be a dict or a path to a JSON/YAML file, got {type(config).__name__}")
    return dict(config)
