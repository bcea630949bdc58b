"""The pseudonym vault: stable placeholders, restoration, and values that never leak."""

from __future__ import annotations

import copy
import json
import logging
import pickle

import pytest

from bulkhead.guard import Entity, PseudonymVault

SECRET = "zhang.san@example.com"


def filled() -> PseudonymVault:
    vault = PseudonymVault()
    vault.placeholder_for(Entity.EMAIL, SECRET)
    vault.placeholder_for(Entity.PHONE, "13800138000")
    return vault


def test_placeholders_are_stable_and_counted_per_entity() -> None:
    vault = PseudonymVault()
    assert vault.placeholder_for(Entity.EMAIL, "a@x.com") == "<EMAIL_1>"
    assert vault.placeholder_for(Entity.EMAIL, "b@x.com") == "<EMAIL_2>"
    assert vault.placeholder_for(Entity.EMAIL, "a@x.com") == "<EMAIL_1>"
    assert vault.placeholder_for(Entity.PRC_ID, "11010519491231002X") == "<PRC_ID_1>"
    assert len(vault) == 3


def test_restore_accepts_what_models_do_to_placeholders() -> None:
    vault = filled()
    assert vault.restore("write to <EMAIL_1> or <email_1> or < EMAIL_1 >") == (
        f"write to {SECRET} or {SECRET} or {SECRET}"
    )
    assert (
        vault.restore("unknown <EMAIL_9> and <NAME_1> stay")
        == "unknown <EMAIL_9> and <NAME_1> stay"
    )
    assert vault.lookup("<PHONE_1>") == "13800138000"
    assert vault.lookup("PHONE_1") is None


def test_repr_str_and_logging_show_no_values(caplog: pytest.LogCaptureFixture) -> None:
    vault = filled()
    assert SECRET not in repr(vault) and SECRET not in str(vault) and SECRET not in f"{vault!r}"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("vault %s %r", vault, vault)
    assert SECRET not in caplog.text
    assert repr(vault) == "PseudonymVault(2 values)"


def test_vault_refuses_pickling_copying_and_json() -> None:
    vault = filled()
    with pytest.raises(TypeError):
        pickle.dumps(vault)
    with pytest.raises(TypeError):
        copy.copy(vault)
    with pytest.raises(TypeError):
        copy.deepcopy(vault)
    with pytest.raises(TypeError):
        json.dumps(vault)
    assert not hasattr(vault, "__dict__")


def test_empty_vault_is_falsy() -> None:
    assert not PseudonymVault() and filled()
