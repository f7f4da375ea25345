"""Ray actors (``restore-bench run --ray [ADDRESS]``) on a real Ray instance on 127.0.0.1, one per
module: the same store as one process, an actor killed mid-cell (Ray restarts it and retries the
cell, stored once), the driver killed mid-run (the rerun resumes and computes no stored cell
again), and each cell's resources from the suite or the options. No mocks of Ray."""
import json
import logging
import socket

import pytest

from benchmarks import runner
from benchmarks.executors import RayWorkers, check_reachable, ray_resources
from benchmarks.registry import BenchmarkError
from benchmarks.studies.compare_runs import compare
from benchmarks.suite import load_suite
from test_runner import SUITE, write_suite
from test_workers import LINUX, kill_driver_then_resume, kill_worker_mid_cell, rows_of

ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install -e ".[ray]"')

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local Ray instance with 2 CPUs for this module's tests; yields its address, which other
    processes (the CLI's drivers) join with ``--ray ADDRESS``."""
    context = ray.init(address="local", num_cpus=2, include_dashboard=False,
                       _node_ip_address="127.0.0.1", log_to_driver=False,
                       logging_level=logging.WARNING)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def test_ray_stores_what_one_process_stores(tmp_path, cluster):
    suite = json.loads(json.dumps(SUITE))  # 20 cells, failed and diverged ones among them
    suite["tasks"][0]["prior"] = {"fn": "fake_components:prior", "log": str(tmp_path / "prior.txt")}
    loaded = load_suite(str(write_suite(tmp_path / "suite", suite)))
    one = runner.run(loaded, tmp_path / "map", progress=False)
    with RayWorkers() as actors:  # this process is connected already: it uses that connection
        on_ray = runner.run(loaded, tmp_path / "ray", progress=False, executor=actors)
    assert ray.is_initialized()
    assert one.status == on_ray.status == {"ok": 12, "failed": 4, "diverged": 4}
    problems, summary = compare(tmp_path / "map", tmp_path / "ray", tol=1e-6)
    assert problems == [] and summary["compared"] == summary["same_keys"] == 20
    node = ray.get_runtime_context().get_node_id()[:12]
    workers = {r["worker"] for r in rows_of(tmp_path / "ray")}
    assert all(w.startswith(f"ray:{node}:") for w in workers)
    # one load per actor (2 CPUs: 2 actors) and one for the checks in this process
    loads = [pid for _, pid in (line.split() for line in (tmp_path / "prior.txt").read_text().splitlines())]
    assert len(loads) == len(set(loads)) <= 3
    assert {f"ray:{node}:{pid}" for pid in loads} >= workers


@LINUX
def test_actor_killed_mid_cell_is_computed_again_and_stored_once(tmp_path, cluster):
    kill_worker_mid_cell(tmp_path, "--ray", cluster)


@LINUX
def test_driver_killed_mid_run_resumes_without_computing_a_stored_cell_again(tmp_path, cluster):
    kill_driver_then_resume(tmp_path, "--ray", cluster)


def test_a_cell_larger_than_the_cluster_is_refused(tmp_path, cluster):
    loaded = load_suite(str(write_suite(tmp_path / "suite")))
    with RayWorkers(num_cpus=64) as actors, pytest.raises(BenchmarkError, match="cannot hold"):
        runner.run(loaded, tmp_path / "out", progress=False, solvers=["same"], executor=actors)


def test_resources_per_cell_come_from_the_options_then_the_suite():
    suite = {"name": "s", "resources": {"num_cpus": 2}}
    assert ray_resources(suite, "cpu") == (2.0, 0.0)
    assert ray_resources(suite, "cpu", num_cpus=0.5) == (0.5, 0.0)
    assert ray_resources({"name": "s"}, "cuda") == (1.0, 1.0)
    assert ray_resources({"name": "s", "resources": {"num_gpus": 0.25}}, "cuda") == (1.0, 0.25)
    with pytest.raises(BenchmarkError, match="num_cpus and/or num_gpus"):
        ray_resources({"name": "s", "resources": {"cpus": 2}}, "cpu")
    with pytest.raises(BenchmarkError, match="needs a GPU per cell"):
        ray_resources({"name": "s"}, "cuda", num_gpus=0)
    with pytest.raises(BenchmarkError, match="num_cpus: expected a number > 0"):
        ray_resources({"name": "s", "resources": {"num_cpus": 0}}, "cpu")


def test_an_address_nothing_answers_fails_fast_naming_it():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(BenchmarkError, match=f"--ray {address}: cannot join .* nothing answers"):
            check_reachable(address)
    with pytest.raises(BenchmarkError, match="expected auto, HOST:PORT or ray://HOST:PORT"):
        check_reachable("headnode")
    check_reachable("auto")  # left to Ray
