"""`bulkhead serve` raises its open-file limit towards what its connection cap needs,
and warns, naming the setting, where the hard limit stops it."""

from __future__ import annotations

import logging
import resource

import pytest

from bulkhead.cli.serve import open_files_for

INFINITY = resource.RLIM_INFINITY


class Limits:
    """A stand-in for the process's RLIMIT_NOFILE."""

    def __init__(self, soft: int, hard: int) -> None:
        self.soft, self.hard = soft, hard
        self.set_calls: list[tuple[int, int]] = []

    def get(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def set(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        assert limits[1] == self.hard, "the hard limit is never changed"
        self.set_calls.append(limits)
        self.soft = limits[0]


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Limits:
    fake = Limits(1024, 1024)
    monkeypatch.setattr(resource, "getrlimit", fake.get)
    monkeypatch.setattr(resource, "setrlimit", fake.set)
    return fake


def test_the_soft_limit_is_raised_to_what_the_cap_needs(
    limits: Limits, caplog: pytest.LogCaptureFixture
) -> None:
    limits.soft, limits.hard = 1024, 1_048_576
    assert open_files_for(10_000) == 21_024
    assert limits.set_calls == [(21_024, 1_048_576)]
    assert "BULKHEAD_HTTP_MAX_CONNECTIONS" not in caplog.text


def test_an_unlimited_hard_limit_is_used_as_far_as_needed(limits: Limits) -> None:
    limits.soft, limits.hard = 1024, INFINITY
    assert open_files_for(100) == 1_224


def test_a_low_hard_limit_is_reached_and_the_setting_named(
    limits: Limits, caplog: pytest.LogCaptureFixture
) -> None:
    limits.soft, limits.hard = 1024, 4096
    with caplog.at_level(logging.WARNING, logger="bulkhead"):
        assert open_files_for(10_000) == 4096
    assert limits.set_calls == [(4096, 4096)]
    assert "BULKHEAD_HTTP_MAX_CONNECTIONS=10000 needs about 21024" in caplog.text
    assert "the hard limit is 4096" in caplog.text


@pytest.mark.parametrize("soft", [50_000, INFINITY])
def test_a_higher_soft_limit_is_never_lowered(
    limits: Limits, caplog: pytest.LogCaptureFixture, soft: int
) -> None:
    limits.soft, limits.hard = soft, INFINITY
    assert open_files_for(10_000) == soft
    assert limits.set_calls == []
    assert "BULKHEAD_HTTP_MAX_CONNECTIONS" not in caplog.text
