"""The Models page's jobs on a real worker: converting and compressing run there, with progress read back.

The worker has a data dir of its own (a models/ folder that links the built MiniLM) and its own
broker database, so what it writes never lands in the shared test models and no other worker
takes its jobs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.pages import models_state
from engine import jobs
from engine.settings import get_settings
from tests.fixtures.ai_engine import WORKER_ENV
from tests.fixtures.models import EMBEDDER, build_tiny_llama_checkpoint, built_models

JOBS_BROKER_DB = 13  # beside the AI worker's 12


@pytest.fixture(scope="module")
def jobs_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("model-jobs")
    (data_dir / "models").mkdir()
    (data_dir / "models" / EMBEDDER).symlink_to(built_models().embedder, target_is_directory=True)
    return data_dir


@pytest.fixture(scope="module")
def jobs_broker(worker_factory, redis_url: str, jobs_data_dir: Path) -> Iterator[str]:
    """A worker (concurrency 1) on its own broker database and data dir; yields the broker's URL."""
    broker = f"{redis_url.rpartition('/')[0]}/{JOBS_BROKER_DB}"
    redis.Redis.from_url(broker).flushdb()
    handle = worker_factory(
        concurrency=1,
        env={"FLOWLOOM_REDIS_URL": broker, "FLOWLOOM_DATA_DIR": str(jobs_data_dir), **WORKER_ENV},
        timeout=120,
    )
    yield broker
    handle.stop()


@pytest.fixture
def web_env(jobs_broker: str, jobs_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process plays the web app: it sends to the jobs worker's broker and sees its data dir."""
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", jobs_broker)
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(jobs_data_dir))
    get_settings.cache_clear()
    yield jobs_data_dir
    get_settings.cache_clear()


def follow(job_id: str, timeout: float = 300.0) -> list[jobs.JobStatus]:
    """Every distinct status of a job, read back as the page does, until it is done."""
    seen: list[jobs.JobStatus] = []
    deadline = time.monotonic() + timeout
    while not (seen and seen[-1].done):
        assert time.monotonic() < deadline, f"job {job_id} not done after {timeout}s: {seen[-1:]}"
        status = jobs.status(job_id)
        if not seen or status != seen[-1]:
            seen.append(status)
        time.sleep(0.1)
    return seen


def assert_progress_went_up_to_done(seen: list[jobs.JobStatus]) -> None:
    fractions = [s.progress for s in seen if s.state in ("running", "succeeded")]
    assert fractions == sorted(fractions), [(s.progress, s.message) for s in seen]
    assert any(s.state == "running" and 0 < s.progress < 1 and s.message for s in seen), seen
    assert seen[-1].state == "succeeded" and seen[-1].progress == 1.0, seen[-1]


def test_models_page_lists_folders_and_compresses_an_embedder_to_int8_in_a_worker(web_env: Path) -> None:
    assert models_state.builders_available()
    assert [(r.name, r.precision, r.can_compress) for r in models_state.model_rows()] == [
        (EMBEDDER, "fp32", True)
    ]
    seen = follow(jobs.submit(models_state.COMPRESS_JOB, {"name": EMBEDDER}))
    assert_progress_went_up_to_done(seen)
    assert seen[-1].message == f"compressed {EMBEDDER} into {EMBEDDER}-int8"
    assert seen[-1].result == {"model": f"{EMBEDDER}-int8", "message": seen[-1].message}
    rows = {r.name: r for r in models_state.model_rows()}
    assert (rows[f"{EMBEDDER}-int8"].kind, rows[f"{EMBEDDER}-int8"].precision) == ("embedding", "int8")
    assert rows[f"{EMBEDDER}-int8"].can_compress is False
    assert rows[EMBEDDER].size.endswith("MB")


def test_converting_a_checkpoint_runs_in_a_worker_reports_progress_and_the_model_appears(
    web_env: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "tiny-llama-hf"
    build_tiny_llama_checkpoint(checkpoint)
    params = {"kind": "llm", "source": str(checkpoint), "name": "converted/tiny-llama"}
    job_id = jobs.submit(models_state.CONVERT_JOB, params)
    seen = follow(job_id)
    assert_progress_went_up_to_done(seen)
    assert seen[-1].result == {
        "model": "converted/tiny-llama",
        "message": "converted tiny-llama-hf into converted/tiny-llama",
    }
    rows = {r.name: r for r in models_state.model_rows()}
    assert (rows["converted/tiny-llama"].kind, rows["converted/tiny-llama"].precision) == ("llm", "fp32")
    assert rows["converted/tiny-llama"].source == str(checkpoint)
    assert not (web_env / "models" / "converted" / "tiny-llama.partial").exists()
    assert jobs.status(job_id) == seen[-1]  # the outcome stays readable after the page stopped polling


def test_a_failing_conversion_is_reported_with_its_message_and_leaves_no_folder(
    web_env: Path, tmp_path: Path
) -> None:
    (tmp_path / "not-a-checkpoint").mkdir()
    params = {"kind": "embedding", "source": str(tmp_path / "not-a-checkpoint"), "name": "broken"}
    seen = follow(jobs.submit(models_state.CONVERT_JOB, params), timeout=60)
    assert seen[-1].state == "failed"
    assert (
        seen[-1].error == f"{tmp_path / 'not-a-checkpoint'} is not a model checkpoint folder (no config.json)"
    )
    assert "broken" not in {r.name for r in models_state.model_rows()}


def test_a_job_no_family_offers_is_refused_before_anything_is_queued(web_env: Path) -> None:
    with pytest.raises(LookupError, match="no installed node family offers the job 'no.such.job'"):
        jobs.submit("no.such.job", {})
    assert jobs.status("00000000-0000-0000-0000-000000000000").state == "queued"
