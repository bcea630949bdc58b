"""`bulkhead finetune create|list|show|events|cancel` against a gateway that fine-tunes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import assert_clean_failure, bulkhead
from tests.integration.test_finetune_api import BASE, GOOD, World, world  # noqa: F401


def test_the_job_lifecycle_from_the_cli(world: World, tmp_path: Path) -> None:  # noqa: F811
    key = world.tenant("ft-cli")
    data = tmp_path / "train.jsonl"
    data.write_bytes(GOOD)

    def cli(*args: str) -> object:
        done = bulkhead("--server", world.gw.url, "--key", key, "finetune", *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    made = cli(
        "create", "--model", BASE, "--training-file", str(data), "--epochs", "2",
        "--lora-rank", "4", "--suffix", "cli", "--json",
    )  # fmt: skip
    assert isinstance(made, dict) and made["status"] in ("queued", "running")
    job_id = made["id"]
    handle = world.runner.wait_started(job_id)
    assert handle.job.hyper.epochs == 2 and handle.job.hyper.lora_rank == 4
    listed = cli("list", "--limit", "5", "--json")
    assert isinstance(listed, dict) and [j["id"] for j in listed["data"]] == [job_id]
    shown = cli("show", job_id, "--json")
    assert isinstance(shown, dict) and shown["training_file"].startswith("file-")
    events = cli("events", job_id, "--json")
    assert isinstance(events, dict) and events["data"]
    cancelled = cli("cancel", job_id, "--json")
    assert isinstance(cancelled, dict) and cancelled["status"] == "cancelled"
    table = bulkhead("--server", world.gw.url, "--key", key, "finetune", "list", cwd=tmp_path)
    assert table.returncode == 0 and "cancelled" in table.stdout
    bad = bulkhead(
        "--server", world.gw.url, "--key", key, "finetune", "create", "--model", BASE,
        "--training-file", str(data), "--epochs", "99", cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode != 0
    assert_clean_failure(bad, "epochs")
    missing = bulkhead(
        "--server", world.gw.url, "--key", key, "finetune", "show", "ftjob-nope", cwd=tmp_path
    )
    assert missing.returncode != 0
    assert_clean_failure(missing, "No such fine-tuning job")
