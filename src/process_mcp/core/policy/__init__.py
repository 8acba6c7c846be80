"""The person's policy: which commands an agent may start, what it may send to a shell,
what is masked in what it reads, how much it may run (see ``docs/security.md``).

These are guardrails against accidents and over-eager agents, not a sandbox: an agent with
a shell of its own can do what the user can.
"""

from process_mcp.core.policy.evaluate import evaluate_command, evaluate_input
from process_mcp.core.policy.files import PolicyError, shown, user_policy_path
from process_mcp.core.policy.loader import PolicySource
from process_mcp.core.policy.model import Limits, Policy
from process_mcp.core.policy.rules import Decision, Finding, Rule

__all__ = [
    "Decision",
    "Finding",
    "Limits",
    "Policy",
    "PolicyError",
    "PolicySource",
    "Rule",
    "evaluate_command",
    "evaluate_input",
    "shown",
    "user_policy_path",
]
