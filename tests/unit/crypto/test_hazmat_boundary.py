"""Only `bulkhead.crypto` may import its hazmat layer, and only that layer `cryptography.hazmat`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import bulkhead

SRC = Path(bulkhead.__file__).resolve().parent

# Modules allowed to import `cryptography.hazmat` outside `bulkhead/crypto/hazmat/`.
# Each entry is a debt with a reason; remove it when the module moves behind crypto.
HAZMAT_ALLOWLIST = {
    # Signs and verifies audit checkpoints with Ed25519 today; it will use an
    # Ed25519 wrapper in `bulkhead.crypto.hazmat` once that exists.
    "audit/checkpoint.py",
}


def _imports(path: Path) -> Iterator[str]:
    package = ["bulkhead", *path.relative_to(SRC).parent.parts]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # Resolve relative imports, so `from ..crypto import hazmat` is caught too.
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _modules() -> Iterator[tuple[str, list[str]]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), list(_imports(path))


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_crypto_imports_its_hazmat_layer() -> None:
    offenders = [
        rel
        for rel, names in _modules()
        if not rel.startswith("crypto/") and any(_under(n, "bulkhead.crypto.hazmat") for n in names)
    ]
    assert offenders == []


def test_only_the_hazmat_layer_imports_cryptography_hazmat() -> None:
    offenders = [
        rel
        for rel, names in _modules()
        if not rel.startswith("crypto/hazmat/")
        and rel not in HAZMAT_ALLOWLIST
        and any(_under(n, "cryptography.hazmat") for n in names)
    ]
    assert offenders == []


def test_allowlist_has_no_stale_entries() -> None:
    users = {
        rel for rel, names in _modules() if any(_under(n, "cryptography.hazmat") for n in names)
    }
    assert users >= HAZMAT_ALLOWLIST


def test_the_walk_sees_the_hazmat_layer() -> None:
    # Guards against a walk that silently finds nothing.
    users = {
        rel for rel, names in _modules() if any(_under(n, "cryptography.hazmat") for n in names)
    }
    assert "crypto/hazmat/_primitives.py" in users


def test_public_face_exports_nothing_from_hazmat() -> None:
    import bulkhead.crypto as crypto

    for name in crypto.__all__:
        assert "hazmat" not in getattr(getattr(crypto, name), "__module__", "")
