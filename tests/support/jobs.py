"""The job API (api/jobs.py) as a client uses it over HTTP: poll a job until it is finished."""

from __future__ import annotations

import time

import httpx

# Bounds a test that would otherwise hang; never the thing tested.
WAIT_SECONDS = 60.0


def job_path(job_id: str) -> str:
    return f"/v1/images/generations/{job_id}"


def get_job(base_url: str, key: str, job_id: str) -> httpx.Response:
    return httpx.get(
        f"{base_url}{job_path(job_id)}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def wait_for_job(base_url: str, key: str, job_id: str) -> httpx.Response:
    """GET the job until it is finished (200; 202 while queued or in progress); its answer."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        response = get_job(base_url, key, job_id)
        if response.status_code != 202:
            return response
        assert response.json()["status"] in ("queued", "in_progress"), response.text
        assert time.monotonic() < deadline, f"the job {job_id} never finished: {response.text}"
        time.sleep(0.2)


def wait_for_status(base_url: str, key: str, job_id: str, status: str) -> httpx.Response:
    """GET the job until its status is ``status``; its answer."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        response = get_job(base_url, key, job_id)
        if response.json().get("status") == status:
            return response
        assert time.monotonic() < deadline, f"the job {job_id} never was {status}: {response.text}"
        time.sleep(0.1)
