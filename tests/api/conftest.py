"""The application fixtures (`client`, asked by a leader; `anonymous`) live in tests/conftest.py."""
