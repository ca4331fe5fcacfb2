"""Triage policy as data: call-type categories, pilot hours, service areas and risk rules."""

from heart.policy.model import Policy, PolicyError, default_policy_path, load_policy

__all__ = ["Policy", "PolicyError", "default_policy_path", "load_policy"]
