"""Tables and plots, rendered from the same pydantic models that `--json` prints. No logic here."""
