"""A real single-node SLURM (tests/slurm/cluster.sh: munged, MariaDB, slurmdbd, slurmctld, slurmd
with a GRES gpu on a dummy device): it accepts jobs, accounts for them (the executor plugin needs
sacct), and refuses at submission a request the node cannot meet instead of leaving it pending.
Skipped, with the reason shown, where SLURM is not installed or the tests do not run as root."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"

pytestmark = [
    pytest.mark.skipif(shutil.which("slurmctld") is None,
                       reason="SLURM not installed (apt-get install slurm-wlm slurmdbd munge mariadb-server)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="bringing up SLURM daemons needs root"),
]


@pytest.fixture(scope="module")
def slurm():
    """The cluster's environment (SLURM_CONF); every daemon is stopped afterwards. Its state lives
    outside pytest's private temporary folder: MariaDB and munged run as their own users."""
    state = Path(tempfile.mkdtemp(prefix="abcl-slurm-"))
    state.chmod(0o755)
    env = {**os.environ, "ABCL_SLURM_STATE": str(state)}
    up = subprocess.run(["bash", str(CLUSTER), "up"], env=env, capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield {**env, "SLURM_CONF": str(state / "etc" / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(CLUSTER), "down"], env=env, capture_output=True, text=True)
        shutil.rmtree(state, ignore_errors=True)


def sbatch(env, *options):
    return subprocess.run(["sbatch", "--parsable", *options], env=env, capture_output=True, text=True)


def test_a_gpu_job_runs_and_is_accounted(slurm, tmp_path):
    out = tmp_path / "job.out"
    # --wait: sbatch returns when the job has ended, with its exit status
    submitted = sbatch(slurm, "--wait", "-p", "gpu", "--gpus=1", "-c", "1", "--mem=500", "-t", "2", "-o", str(out),
                       "--wrap", "echo gres=$SLURM_JOB_GPUS; nproc")
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    state = ""
    while state in ("", "PENDING", "RUNNING", "COMPLETING"):  # slurmdbd records the end a moment later
        time.sleep(0.5)
        state = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "State"], env=slurm,
                               capture_output=True, text=True).stdout.strip().split(" ")[0]
    assert state == "COMPLETED"
    assert out.read_text().splitlines()[0].startswith("gres=")


@pytest.mark.parametrize("request_args,reason", [
    (["-c", "64"], "More processors requested than permitted"),
    (["-p", "gpu", "--gpus=2"], "Requested node configuration is not available"),
    (["-p", "nosuch"], "Invalid partition name specified"),
])
def test_an_unsatisfiable_request_is_refused_at_once(slurm, request_args, reason):
    submitted = sbatch(slurm, *request_args, "-t", "1", "--wrap", "true")
    assert submitted.returncode != 0 and reason in submitted.stderr
