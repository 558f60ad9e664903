"""Request and response shapes of the service, its limits, and the rule for control characters.

Limits come from environment variables read once at import, because they are baked into the
OpenAPI document (`maxItems`, `maxLength`) that clients and `schemathesis` check the server
against: what the document calls valid must be accepted, and everything else rejected with 400.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from attnlens.models.contract import TRANSFORMER_EXPLANATIONS as ENCODER_METHODS
from serving.settings import MAX_CHARS, MIN_CONFIDENCE

# The control-character rule (docs/serving.md): NUL is removed; every other C0 control except
# tab, line feed and carriage return, DEL and the C1 controls become a space; unpaired UTF-16
# surrogates (only reachable through JSON `\ud800` escapes) become U+FFFD. Tokenizers treat
# controls inconsistently and some crash on surrogates, so they never reach the model.
_NUL = "\x00"
_CONTROLS = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATES = re.compile("[\ud800-\udfff]")
# A text must contain one character that is neither a control nor white space (Python's
# str.isspace set, written out so the OpenAPI pattern and this check are the same expression).
CONTENT_PATTERN = (
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
_CONTENT = re.compile(CONTENT_PATTERN)


def clean_text(text: str) -> str:
    """Apply the control-character rule; raises if nothing readable is left."""
    if not _CONTENT.search(text):
        raise PydanticCustomError(
            "blank_text", "text is empty or only white space and control characters"
        )
    text = text.replace(_NUL, "")
    text = _CONTROLS.sub(" ", text)
    return _SURROGATES.sub("\ufffd", text)


def _text_field(description: str) -> object:
    return Field(
        min_length=1,
        max_length=MAX_CHARS,
        description=description,
        json_schema_extra={"pattern": CONTENT_PATTERN},
    )


Text = Annotated[
    str,
    _text_field(f"1 to {MAX_CHARS} characters with at least one visible character"),
    AfterValidator(clean_text),
]


# Strict: "0.5" or true is a 400, as the OpenAPI `number` says, not silently read as a threshold.
# Documented with OpenAPI 3.0's `nullable`: the document is 3.0, where pydantic's
# `anyOf: [number, {type: null}]` does not allow null, so clients and schemathesis would call
# the accepted null invalid.
MinConfidence = Annotated[
    float | None,
    Field(ge=0, le=1, strict=True, description=(
        "0 to 1: a result whose `score` is below it says `uncertain: true` (its label is still the most "
        f"probable class); null or absent: the server's ATTNLENS_MIN_CONFIDENCE ({MIN_CONFIDENCE:g}, 0 = off)")),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1, "nullable": True}),
]


def served_model_methods() -> tuple[str, ...]:
    """Explanation methods of the model ATTNLENS_MODEL names, read from its config.json without
    loading it: the encoders (BERT, RoBERTa, DistilBERT) have ENCODER_METHODS, the pre-BERT baselines
    (attnlens.baselines) `native`, `occlusion` and integrated gradients. The OpenAPI enum then lists
    exactly what this server accepts. A Hub id is not resolved here (no network at import); the
    encoder list is assumed and the model checked at load."""
    try:
        from attnlens.model_source import resolve_model

        folder = Path(resolve_model().name_or_path)
        if not (folder / "config.json").is_file():
            return ENCODER_METHODS
        from attnlens.loading import model_class, model_type_of

        return tuple(model_class(model_type_of(folder)).supported_explanations)
    except Exception:  # no model yet (e.g. `bentoml build` before export): the service start says why
        return ENCODER_METHODS


METHODS = served_model_methods()
DEFAULT_METHOD = "grad_rollout" if "grad_rollout" in METHODS else METHODS[0]
Method = Literal[METHODS]  # type: ignore[valid-type]
# word: word pieces merged; token: word pieces; sentence: the model's sentences (the HAN's own
# split, else ends after ".", "!", "?"), see docs/explanations.md.
Level = Literal["word", "token", "sentence"]
LongText = Literal["truncate", "chunk"]

SAMPLE_TEXTS = [
    "a gripping, beautifully acted film that stays with you long after the credits.",
    "the plot is thin and the jokes fall flat; i checked my watch twice.",
]
SAMPLE_TEXT = "an unexpectedly moving story, though the second half drags a little."


class Importance(BaseModel):
    """Importance of one word (word pieces merged), token or sentence; `start`/`end` index the text."""

    text: str
    start: int
    end: int
    score: float


class ExplanationResult(BaseModel):
    method: str
    level: Level
    target: int = Field(description="index of the class explained (the predicted one)")
    importances: list[Importance] = Field(description="scores of non-special items; they sum to 1")
    sentences: list[Importance] | None = Field(
        None, description="/explain: the sentences' scores too, whatever `level` (a page shades sentences and "
                          "highlights words from one answer)")


class PredictionResult(BaseModel):
    label: str
    score: float = Field(description="probability of `label`")
    probabilities: dict[str, float]
    num_tokens: int = Field(description="tokens the model saw, with [CLS]/[SEP]; the whole text with chunk")
    truncated: bool = Field(description="tokens past the model's window were dropped")
    num_windows: int = Field(1, description="windows the model read: more than 1 for a text past the window "
                                            "with long_text chunk")
    uncertain: bool = Field(description="`score` is below the request's `min_confidence` (else the server's); "
                                        "`label` is still the most probable class")
    explanation: ExplanationResult | None = None


class ExplainResult(PredictionResult):
    """A prediction with its explanation (always present)."""

    explanation: ExplanationResult


class ErrorBody(BaseModel):
    """Every 4xx the service sends; 429 and 504 come from BentoML with `error` only."""

    error: str = Field(description="one line naming the field, the value and the limit")
    field: str | None = None
    value: str | None = Field(None, description="the offending value, shortened")
    limit: str | int | None = None
    errors: list[str] | None = Field(None, description="every problem found, one line each")
