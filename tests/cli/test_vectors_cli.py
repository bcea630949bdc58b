"""`bulkhead vectors …` against a real gateway: create, add (a local file), search, remove."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.test_cli import assert_clean_failure, bulkhead
from tests.integration.test_vector_stores import MODEL, world  # noqa: F401


def test_a_store_from_the_cli(world: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    url, key = world["gw"].url, world["a"]
    doc = tmp_path / "cats.txt"
    doc.write_text("Cats purr and sleep in the sun.")

    def cli(*args: str) -> Any:
        done = bulkhead("--server", url, "--key", key, "vectors", *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    store = cli("create", "--name", "cli", "--model", MODEL, "--json")
    added = cli("add", store["id"], str(doc), "--attribute", "topic=cats", "--wait", "--json")
    assert added["status"] == "completed" and added["attributes"] == {"topic": "cats"}
    found = cli("search", store["id"], "cat purr", "--max-results", "3", "--json")
    assert found["data"][0]["file_id"] == added["id"]
    assert [f["id"] for f in cli("files", store["id"], "--json")["data"]] == [added["id"]]
    assert cli("update", store["id"], "--name", "renamed", "--json")["name"] == "renamed"
    assert store["id"] in {s["id"] for s in cli("list", "--limit", "100", "--json")["data"]}
    assert cli("remove", store["id"], added["id"], "--json")["deleted"]
    table = bulkhead("--server", url, "--key", key, "vectors", "show", store["id"], cwd=tmp_path)
    assert table.returncode == 0 and "renamed" in table.stdout
    bad = bulkhead(
        "--server", url, "--key", key, "vectors", "search", store["id"], "x",
        "--max-results", "99", cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode != 0
    assert_clean_failure(bad, "max-results")
    assert cli("delete", store["id"], "--json")["deleted"]
    gone = bulkhead("--server", url, "--key", key, "vectors", "show", store["id"], cwd=tmp_path)
    assert gone.returncode != 0
    assert_clean_failure(gone, "No vector store found")
