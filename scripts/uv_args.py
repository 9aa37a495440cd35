"""Print a bash array assignment, UV_ARGS=(...), that gives `uv pip install` the package
sources pip is configured with here (pip.conf files and PIP_* variables, as `pip config list`
shows them): index URLs, find-links, constraint files, the CA bundle and the timeout. uv reads
none of pip's configuration itself; without these it would resolve from other places than pip.
"""

from __future__ import annotations

import shlex
import subprocess
import sys


def pip_config() -> dict[str, str]:
    """{option: value} of pip's configuration, later sources (the environment) winning."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    for line in listed.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key.rsplit(".", 1)[-1]] = value.strip().strip("'\"")
    return found


def uv_args(config: dict[str, str]) -> list[str]:
    args = ["--index-strategy", "unsafe-best-match"]  # pip's: the best match over all indexes
    if "index-url" in config:
        args += ["--index-url", config["index-url"]]
    for option in ("extra-index-url", "find-links", "constraint"):
        flag = "-c" if option == "constraint" else f"--{option}"
        for value in config.get(option, "").split():
            args += [flag, value]
    return args


def main() -> None:
    config = pip_config()
    print("UV_ARGS=(" + " ".join(shlex.quote(a) for a in uv_args(config)) + ")")
    if "cert" in config:
        print(f"export SSL_CERT_FILE={shlex.quote(config['cert'])}")
    if "timeout" in config or "default-timeout" in config:
        seconds = config.get("timeout", config.get("default-timeout"))
        print(f"export UV_HTTP_TIMEOUT={shlex.quote(str(seconds))}")


if __name__ == "__main__":
    main()
