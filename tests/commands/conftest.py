"""The template tests' loopback image server, for commands that provision from it."""

from tests.template.conftest import image_server, small_qcow2  # noqa: F401 - fixtures
