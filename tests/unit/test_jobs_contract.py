"""Background jobs in the node contract: a family registers a job by name; the engine's door refuses unknown ones."""

from __future__ import annotations

import pytest

from engine import jobs
from engine.contract import get_job, job_available, register_job


def _double(progress, *, x: int) -> dict:
    progress(1.0, "doubled")
    return {"x": 2 * x}


def test_a_registered_job_is_found_by_name_and_cannot_be_taken_by_another_function() -> None:
    assert register_job("test.double", _double, description="x twice") is _double
    assert register_job("test.double", _double) is _double  # a family loading again is fine
    job = get_job("test.double")
    assert job is not None and job.run is _double and job_available("test.double")
    with pytest.raises(ValueError, match="job 'test.double' is already registered"):
        register_job("test.double", lambda progress: {})


def test_a_job_is_available_only_when_registered_and_its_check_passes() -> None:
    register_job("test.needs_extra", _double, available=lambda: False)
    assert get_job("test.needs_extra") is not None
    assert not job_available("test.needs_extra")
    assert not job_available("test.no_such_job")


def test_the_openvino_family_offers_its_model_jobs_through_its_entry_point() -> None:
    assert get_job("openvino.convert") is not None and get_job("openvino.compress") is not None


def test_submitting_a_job_no_family_offers_is_refused_before_any_broker_is_reached() -> None:
    with pytest.raises(LookupError, match="no installed node family offers the job 'test.nothing'"):
        jobs.submit("test.nothing", {})
