"""A real single-node SLURM (tests/slurm/cluster.sh: munged, MariaDB, slurmdbd, slurmctld, slurmd
with GPU GRES that have no device): it accepts jobs, accounts for them, and refuses at submission a
request the node cannot meet instead of leaving it pending. The workflow runs through
profiles/slurm on it: an sbatch refusal reaches the user, and the `.test` run, cancelled mid-run
with scancel, stops by itself, leaves nothing half-written, and finishes when run again.
`make test-cluster` runs these (CI runs it after `make test`). Skipped, with the reason shown,
where SLURM is not installed or the tests do not run as root."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
# A status poll every few seconds instead of the plugin's 40 s and more: the run is short.
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
             "--profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "5",
             "--configfile", ".test/config/config.yaml", "gpu.yaml"]
# a hang guard only: the cancelled run ends in a minute or two; before the fix it polled forever
HANG_GUARD_S = 1800

pytestmark = [
    pytest.mark.cluster,  # make test-cluster: a cluster's daemons and real jobs, kept out of the quick suite
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
    (["-p", "gpu", f"--gpus={os.cpu_count() + 1}"], "Requested node configuration is not available"),
    (["-p", "nosuch"], "Invalid partition name specified"),
])
def test_an_unsatisfiable_request_is_refused_at_once(slurm, request_args, reason):
    submitted = sbatch(slurm, *request_args, "-t", "1", "--wrap", "true")
    assert submitted.returncode != 0 and reason in submitted.stderr


@pytest.fixture
def workdir(tmp_path):
    for name in ("config", ".test", "profiles"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "tests" / "slurm" / "gpu.yaml", tmp_path / "gpu.yaml")
    return tmp_path


def run_workflow(env, workdir, *args):
    result = subprocess.run([*SNAKEMAKE, *args], cwd=workdir, env=env, capture_output=True, text=True,
                            timeout=HANG_GUARD_S)
    return result.returncode, result.stdout + result.stderr


def test_an_sbatch_refusal_reaches_the_user(slurm, workdir):
    """Snakemake drops the executor's message for job groups (abcl.cluster shows it again)."""
    one_model = "results/mnist5k-test/models/loss~sce/s~0/m~0/k1~0/k2~0/seed~0/model.pt"
    code, log = run_workflow(slurm, workdir, "--set-resources", "train:slurm_partition=nosuch", "--", one_model)
    assert code != 0
    assert "Error in group train: SLURM sbatch failed" in log and "Invalid partition name specified" in log
    # a --set-resources on the command line replaced the profile's key, yet the request kept the
    # rule's measured walltime and memory, its threads and its GPU (they live in the workflow)
    call = re.search(r"sbatch call:\s*(sbatch .*)", log).group(1)
    assert re.search(r"-p nosuch -t \d+ --mem \d+ --cpus-per-task=1 .*--gpus=1", call), call


def squeue_jobs(env) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of every job SLURM still lists; the comment names the rule."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], env=env, capture_output=True, text=True).stdout
    return [tuple(line.split("|", 2)) for line in out.splitlines() if line.count("|") == 2]


def test_the_test_run_through_slurm_survives_a_scancel(slurm, workdir):
    env = slurm
    log_path = workdir / "first-run.log"  # a file, not a pipe: an unread pipe would stall Snakemake
    with open(log_path, "w") as log:
        run = subprocess.Popen([*SNAKEMAKE], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    cancelled, give_up = None, time.monotonic() + HANG_GUARD_S
    while cancelled is None and run.poll() is None and time.monotonic() < give_up:  # the first evaluation group
        running = [job for job, state, comment in squeue_jobs(env) if state == "RUNNING" and "evaluate" in comment]
        if running:
            time.sleep(5)  # let it write part of its outputs
            subprocess.run(["scancel", running[0]], env=env, check=True)
            cancelled = running[0]
        time.sleep(1)
    try:
        run.wait(timeout=HANG_GUARD_S)
    finally:
        run.kill()  # a no-op when it ended by itself, as it must
    first_log = log_path.read_text()
    assert cancelled, "no evaluation group ever ran:\n" + first_log[-3000:]
    # the cancelled group is seen to fail (plugin 2.8.0 with sacct polled it forever)
    assert run.returncode != 0 and f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in first_log
    results = workdir / "results"
    assert not list(results.rglob("*.part")), "a half-written file survived the cancel"

    # no --unlock needed; only what is missing runs again
    code, second_log = run_workflow(env, workdir)
    assert code == 0, second_log[-4000:]
    assert "Finished jobid" in second_log
    for figure in ("fig1.png", "fig2.png", "fig3.png"):
        assert (results / "mnist5k-test" / "figures" / figure).stat().st_size > 0
    assert not list(results.rglob("*.part"))
    code, dry = run_workflow(env, workdir, "-n")
    assert code == 0 and "Nothing to be done" in dry
