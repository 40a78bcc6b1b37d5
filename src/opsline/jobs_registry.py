"""Builds the job-kind → handler registry from every area that runs work in the background."""

from __future__ import annotations

from opsline.core.jobs import Registry


def build_registry() -> Registry:
    registry = Registry()
    # Each area with background work exposes `register_jobs(registry)`; add new areas here.
    return registry
