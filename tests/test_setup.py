"""scripts/setup.sh installs with uv from the package sources pip is configured with here:
scripts/uv_args.py turns pip's configuration into uv's arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _uv_args(env: dict[str, str]) -> list[str]:
    """The lines bash sees after evaluating the script's output: the arguments, then the CA file
    and the timeout it exports."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SSL_CERT", "UV_"))}
    shown = subprocess.run(
        ["bash", "-c", f'eval "$("{sys.executable}" scripts/uv_args.py)"; '
                       'printf "%s\\n" "${UV_ARGS[@]}" "cert=${SSL_CERT_FILE:-}" '
                       '"timeout=${UV_HTTP_TIMEOUT:-}"'],
        cwd=ROOT, env={**clean, "PIP_CONFIG_FILE": os.devnull, **env},
        capture_output=True, text=True, check=True)
    return shown.stdout.splitlines()


def test_without_pip_configuration_uv_resolves_as_pip_would() -> None:
    assert _uv_args({}) == ["--index-strategy", "unsafe-best-match", "cert=", "timeout="]


def test_pip_indexes_find_links_constraints_ca_file_and_timeout_pass_to_uv() -> None:
    found = _uv_args({"PIP_INDEX_URL": "https://mirror.example/simple",
                      "PIP_EXTRA_INDEX_URL": "file:///opt/a/simple file:///opt/b/simple",
                      "PIP_FIND_LINKS": "/opt/wheels", "PIP_CONSTRAINT": "/etc/pins.txt",
                      "PIP_CERT": "/etc/ca bundle.pem", "PIP_DEFAULT_TIMEOUT": "180"})
    assert found == ["--index-strategy", "unsafe-best-match",
                     "--index-url", "https://mirror.example/simple",
                     "--extra-index-url", "file:///opt/a/simple",
                     "--extra-index-url", "file:///opt/b/simple",
                     "--find-links", "/opt/wheels", "-c", "/etc/pins.txt",
                     "cert=/etc/ca bundle.pem", "timeout=180"]
