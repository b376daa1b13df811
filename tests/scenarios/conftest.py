from tests.api.conftest import client  # noqa: F401  (the same application for the HTTP tests)
