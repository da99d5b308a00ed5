"""A Spark standalone cluster on this machine: a master and workers started with pyspark's own
launcher (`bin/spark-class org.apache.spark.deploy.{master.Master,worker.Worker}`), bound to 127.0.0.1,
and stopped on exit. It lets a test or a benchmark run a job through `spark-submit --master spark://...`
the way a real cluster runs it (separate executor JVMs, shuffles over the network), without one.

    with standalone_cluster(workers=2, cores_per_worker=1) as cluster:
        subprocess.run([cluster.spark_submit, "--master", cluster.master, ...], env=cluster.env)
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class StandaloneCluster:
    master: str         # spark://127.0.0.1:PORT
    spark_home: str
    env: dict           # the environment its processes run with; pass it to spark-submit too

    @property
    def spark_submit(self) -> str:
        return os.path.join(self.spark_home, "bin", "spark-submit")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the standalone master did not open port {port} in {seconds:.0f} s")


@contextlib.contextmanager
def standalone_cluster(workers: int = 1, cores_per_worker: int = 2, worker_memory: str = "2g",
                       start_timeout_s: float = 60, register_s: float = 5) -> Iterator[StandaloneCluster]:
    """Start a master and `workers` workers, yield the cluster once the master listens and the workers
    had `register_s` seconds to register, and stop every process on exit (terminate, then kill after
    30 s). The web UIs get free ports too, so two clusters (or a running Spark) never collide."""
    from pyspark.find_spark_home import _find_spark_home

    home = _find_spark_home()
    spark_class = os.path.join(home, "bin", "spark-class")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_HOME": home}
    port = free_port()
    master = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> None:
        procs.append(subprocess.Popen([spark_class, *args, "--host", "127.0.0.1", "--webui-port", str(free_port())],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    try:
        start("org.apache.spark.deploy.master.Master", "--port", str(port))
        _wait_for_port(port, start_timeout_s)
        for _ in range(workers):
            start("org.apache.spark.deploy.worker.Worker", master, "--cores", str(cores_per_worker),
                  "--memory", worker_memory)
        time.sleep(register_s)
        yield StandaloneCluster(master, home, env)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
