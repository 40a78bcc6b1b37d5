"""Builds the job-kind → handler registry from every area that runs work in the background."""

from __future__ import annotations

from opsline.areas import load_areas
from opsline.core import domain_events
from opsline.core.jobs import Registry


def build_registry() -> Registry:
    registry = Registry()
    registry.register(domain_events.DELIVER_JOB)(domain_events.deliver_job)
    for area in load_areas():
        if area.register_jobs is not None:
            area.register_jobs(registry)
    return registry
