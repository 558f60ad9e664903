"""The service's environment settings: values parse as documented, and a bad one is an error
naming the variable (raised when the service module loads, so `bentoml serve` stops with it)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("raw", "expected"), [("", True), ("0", False), ("off", False), ("Yes", True), (" 1 ", True)])
def test_service_on_off_settings_parse(monkeypatch, raw, expected):
    from serving.settings import env_flag

    monkeypatch.setenv("ATTNLENS_SOME_FLAG", raw)
    assert env_flag("ATTNLENS_SOME_FLAG", True) is expected


def test_service_settings_name_a_bad_value(monkeypatch):
    from serving.settings import env_flag, env_int

    monkeypatch.setenv("ATTNLENS_ACCESS_LOG", "maybe")
    with pytest.raises(ValueError, match="ATTNLENS_ACCESS_LOG='maybe' is not one of 1/true/yes/on or 0/false/no/off"):
        env_flag("ATTNLENS_ACCESS_LOG", True)
    monkeypatch.setenv("ATTNLENS_WORKERS", "0")
    with pytest.raises(ValueError, match="ATTNLENS_WORKERS=0 is below the minimum 1"):
        env_int("ATTNLENS_WORKERS", 1)


@pytest.mark.parametrize(("raw", "message"), [("1.5", "is above the maximum 1.0"), ("-0.1", "is below the minimum 0.0"),
                                              ("nan", "is below the minimum"), ("half", "is not a number")])
def test_min_confidence_setting_is_a_share(monkeypatch, raw, message):
    from serving.settings import env_float

    monkeypatch.setenv("ATTNLENS_MIN_CONFIDENCE", raw)
    with pytest.raises(ValueError, match=f"ATTNLENS_MIN_CONFIDENCE=.*{message}"):
        env_float("ATTNLENS_MIN_CONFIDENCE", 0.0, minimum=0.0, maximum=1.0)
    monkeypatch.setenv("ATTNLENS_MIN_CONFIDENCE", "0.75")
    assert env_float("ATTNLENS_MIN_CONFIDENCE", 0.0, minimum=0.0, maximum=1.0) == 0.75
