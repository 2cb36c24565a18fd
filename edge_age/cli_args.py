"""Argument types every command shares, so that a bad flag is refused by argparse (one line, exit 2) before
any long work starts."""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path


class BadValue(argparse.ArgumentTypeError, ValueError):
    """A flag value that is refused: argparse shows its message; called directly, it is a ValueError (exit 2)."""


def _whole_number(text: str, minimum: int) -> int:
    wanted = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
    try:
        value = int(text)
    except ValueError:
        raise BadValue(f"must be {wanted}, got {text!r}") from None
    if value < minimum:
        raise BadValue(f"must be {wanted}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def float_between(low: float, high: float, low_included: bool = False, high_included: bool = True):
    """An argument type for a finite number in the range given (brackets as in maths: (0, 1], [0, 1))."""
    shown = f"{'[' if low_included else '('}{low:g}, {high:g}{']' if high_included else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise BadValue(f"must be a number, got {text!r}") from None
        above = value >= low if low_included else value > low
        below = value <= high if high_included else value < high
        if not (math.isfinite(value) and above and below):
            raise BadValue(f"must be in {shown}, got {text}")
        return value

    return parse


# A learning rate: anything above 1 diverges for every recipe here.
learning_rate = float_between(0, 1)
positive_float = float_between(0, math.inf, high_included=False)


def csv_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']; an empty list is refused (say which items you want)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise BadValue(f"needs at least one comma-separated item, got {text!r}")
    return items


def key_values(text: str) -> dict:
    """'a=1,b=x' -> {'a': 1, 'b': 'x'} (numbers and true/false parsed)."""
    result = {}
    for item in filter(None, text.split(",")):
        if "=" not in item:
            raise BadValue(f"expected key=value, got {item!r}")
        key, raw = item.split("=", 1)
        if not key.strip():
            raise BadValue(f"expected key=value, got {item!r}")
        try:
            value = json.loads(raw.lower() if raw.lower() in ("true", "false") else raw)
        except json.JSONDecodeError:
            value = raw
        result[key.strip()] = value
    if not result:
        raise BadValue(f"expected key=value pairs, got {text!r}")
    return result


def output_file(text: str) -> Path:
    """A file to write results to: not a folder, in a folder that exists and can be written."""
    path = Path(text)
    if path.is_dir():
        raise BadValue(f"{text} is a folder; give a file name inside it (e.g. {path / 'results.csv'})")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadValue(f"the folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise BadValue(f"the folder {parent} cannot be written")
    return path


def output_folder(text: str) -> Path:
    """A folder to write into (made if missing): not an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise BadValue(f"{text} is a file, not a folder")
    return path
