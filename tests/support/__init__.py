"""Shared test helpers (no tests here): hand-made canonical tables (`canonical`), contract input folders
for the validation tests (`validate_inputs`), hand-made feature rows and rule files (`rules`). Runs are
built by the session fixtures in tests/conftest.py (small_county, small_run)."""
