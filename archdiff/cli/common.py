"""Arguments and output helpers shared by the commands."""
from __future__ import annotations

import json
import sys
from typing import Any

from archdiff.errors import UsageError


def add_model_args(parser, name: str = "model",
                   help_text: str = "model file, - (stdin), REV:PATH (git) or package.module:callable", *,
                   build: bool = True) -> None:
    parser.add_argument(name, help=help_text)
    parser.add_argument("--input-format", choices=("keras", "h5", "weights.h5", "json", "yaml"),
                        help="the format of a model read from stdin or a pipe (default: from its content)")
    parser.add_argument("--arg", dest="factory_args", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for a module:callable factory (value read as JSON, else text)")
    if build:
        add_build_args(parser)


def add_build_args(parser) -> None:
    parser.add_argument("--build", action="store_true",
                        help="a model whose config holds constructor arguments (keras-hub): let Keras build it "
                             "(no weights loaded, safe mode) and read its layers, graph and variables; cached")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="with --build: a module that defines the model's classes, imported before building "
                             "(Keras and keras-hub always are; a module the file names is never imported unasked)")


def factory_kwargs(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--arg '{pair}' is not KEY=VALUE", hint="for example --arg include_top=false")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def load_model(args, attr: str = "model"):
    from archdiff.read import load

    return load(getattr(args, attr), factory_kwargs=factory_kwargs(getattr(args, "factory_args", [])),
                input_format=getattr(args, "input_format", None), **build_options(args))


def build_options(args) -> dict:
    from archdiff.read.build import check_imports

    imports = check_imports(getattr(args, "imports", []) or [])
    if imports and not getattr(args, "build", False):
        raise UsageError("--import is for --build", hint="add --build, or leave --import out")
    return {"build": bool(getattr(args, "build", False)), "imports": imports}


def emit(text: str, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(text if text.endswith("\n") else text + "\n")


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"
