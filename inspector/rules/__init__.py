"""Pure rules: (deal facts, playbook, today) -> evidence, stage check, findings.

Nothing here reads the clock or the database. `today` is always passed in.
"""
from inspector.rules.evaluate import (
    CommitCheck,
    DealFacts,
    EvidenceState,
    StageCheck,
    commit_check,
    deal_desk_hits,
    evaluate_deal,
    evidence_status,
    stage_check,
)
from inspector.rules.changes import summarize_changes

__all__ = ["CommitCheck", "DealFacts", "EvidenceState", "StageCheck", "commit_check",
           "deal_desk_hits", "evaluate_deal", "evidence_status", "stage_check",
           "summarize_changes"]
