"""Triage stage: decides which pilot, if any, takes each call."""

from heart.agents.triage.decide import apply_update, decide, needs_redecision

__all__ = ["apply_update", "decide", "needs_redecision"]
