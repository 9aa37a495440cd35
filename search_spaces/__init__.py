"""The search spaces that ship with orca-automl, installed as the package
`orca_automl.search_spaces` (see pyproject.toml) and read through `importlib.resources`."""
