"""The base model of the desired state and located cross-field errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["FieldProblems", "Loc", "SpecModel"]

Loc = tuple[str | int, ...]


class SpecModel(BaseModel):
    """Frozen, closed model: unknown keys are errors, values are never coerced from strings."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=False,
        use_attribute_docstrings=True,
        hide_input_in_errors=False,
    )


class FieldProblems(ValueError):
    """Raised by a model validator to report problems at places inside the model.

    pydantic places a model validator's error at the model itself; the loader
    unpacks ``problems`` (locations relative to the model) so each problem
    points at the exact key or entry that caused it.
    """

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))
