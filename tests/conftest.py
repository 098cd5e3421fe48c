"""Shared fixtures: one tiny demo dataset and one real local Ray instance per test session."""

from pathlib import Path

import pytest

from tuner.commands.search import keep_local_ray_on_loopback

# Before any test module imports Ray: the Ray the tests start listens on loopback, as a search's does.
keep_local_ray_on_loopback()

ROOT = Path(__file__).resolve().parents[1]
TINY_SPACE = ROOT / "search_spaces" / "tiny.yaml"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The tiny space's demo data: real h5 files in the SNU layout, generated once per session."""
    from data.demo import write_demo_dataset
    from tuner.commands.demo_data import demo_spec
    from tuner.config.space import load_space

    root = tmp_path_factory.mktemp("demo") / "tiny"
    return write_demo_dataset(root, demo_spec(load_space(TINY_SPACE).demo))


@pytest.fixture(scope="session")
def ray_instance():
    """A real local Ray (2 CPUs, no dashboard, on loopback as a search starts it), started once: it costs
    seconds to start."""
    import ray

    from tuner.search.cluster import worker_env

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="WARNING", runtime_env={"env_vars": worker_env()})
    yield ray
    ray.shutdown()
