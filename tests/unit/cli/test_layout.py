"""Which columns a table keeps at a terminal's width, and how wide each one gets."""

from __future__ import annotations

from bulkhead.cli._layout import MIN_WRAP, Measured, Rank, measure, plan, rank_of, table_width

TENANT_ID = "ten_841d0e177c8ec99be2d4"


def column(name: str, cells: list[str], rank: Rank | None = None) -> Measured:
    return measure(name, rank if rank is not None else rank_of(name, cells), cells, [])


def test_identifiers_are_keys() -> None:
    for name in ("id", "key_id", "requester_id", "name", "secret", "tenant", "principal"):
        assert rank_of(name, ["x"]) is Rank.KEY, name


def test_timestamps_flags_and_notes_are_details() -> None:
    assert rank_of("created_at", ["2026-01-01T00:00:00Z"]) is Rank.DETAIL
    assert rank_of("break_glass", [True, None, False]) is Rank.DETAIL
    assert rank_of("reason", ["because"]) is Rank.DETAIL
    assert rank_of("tier", ["shared"]) is Rank.MAIN
    assert rank_of("status", [None]) is Rank.MAIN, "no value: nothing says it is a flag"


def test_a_key_column_is_never_narrower_than_its_longest_cell() -> None:
    measured = column("id", [TENANT_ID, "ten_1"])
    assert (measured.natural, measured.least, measured.wraps) == (24, 24, False)


def test_other_columns_wrap_between_words_never_inside_one() -> None:
    measured = column("memory", ["3.1/80.0 GiB", "a-very-long-single-word"])
    assert measured.least == len("a-very-long-single-word") and measured.wraps
    short = column("status", ["active"])
    assert short.least == len("status") and short.least <= MIN_WRAP


def test_list_items_stay_whole() -> None:
    measured = measure("granted_to", Rank.KEY, ["alpha, beta-tenant"], ["alpha", "beta-tenant"])
    assert measured.wraps and measured.least == len("beta-tenant")


def test_everything_fits_nothing_goes() -> None:
    columns = [column("name", ["acme"]), column("id", [TENANT_ID])]
    layout = plan(columns, 80)
    assert layout.hidden == () and layout.widths == (4, 24) and layout.fits


def test_details_go_first_then_the_rightmost_others() -> None:
    columns = [
        column("id", [TENANT_ID]),
        column("name", ["acme-corporation-eu-west"]),
        column("tier", ["shared"]),
        column("created_at", ["2026-12-06T09:18:15.870187Z"]),
        column("status", ["suspended"]),
    ]
    assert plan(columns, 80).hidden == ("created_at",)
    assert plan(columns, 60).hidden == ("created_at", "status")
    narrow = plan(columns, 50)
    assert [c.name for c in narrow.shown] == ["id", "name"] and narrow.fits


def test_keys_are_never_dropped_or_narrowed() -> None:
    columns = [column("id", [TENANT_ID]), column("tenant", ["x" * 40]), column("note", ["n"])]
    layout = plan(columns, 60)
    assert [c.name for c in layout.shown] == ["id", "tenant"]
    assert layout.widths == (24, 40) and not layout.fits, "too wide: the caller prints records"


def test_wrapping_columns_narrow_to_fit() -> None:
    columns = [column("id", [TENANT_ID]), column("memory", ["one two three four five six"])]
    layout = plan(columns, 40)
    assert layout.fits and table_width(layout.widths) <= 40 and layout.widths[0] == 24


def test_wide_shows_every_column_whole() -> None:
    columns = [column("id", [TENANT_ID]), column("created_at", ["2026-12-06T09:18:15.870187Z"])]
    layout = plan(columns, None)
    assert layout.hidden == () and layout.widths == (24, 27)
