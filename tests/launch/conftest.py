"""The dimuon data and single-process reference fixtures, shared with tests/distributed."""

from tests.distributed.conftest import nano, shared_data_dir, single  # noqa: F401
