"""The bundled playbook, `parse_playbook` validation with key paths, and `inspector playbook ...`."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from inspector.cli import main
from inspector.playbook import (
    DEAL_FIELDS,
    PlaybookError,
    default_playbook_text,
    load_playbook,
    parse_playbook,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOML = REPO / "data" / "playbook.toml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return tomllib.loads(default_playbook_text())


def problems_for(raw: dict, mutate) -> list[str]:
    data = copy.deepcopy(raw)
    mutate(data)
    with pytest.raises(PlaybookError) as err:
        parse_playbook(tomli_w.dumps(data), "bad.toml")
    assert err.value.source == "bad.toml"
    assert err.value.problems, "a PlaybookError must carry at least one problem"
    return err.value.problems


# -- the bundled playbook ------------------------------------------------------------------


def test_bundled_playbook_stages(playbook):
    assert len(playbook.stages) == 7
    kinds = [s.kind for s in playbook.stages]
    assert kinds.count("won") == 1
    assert kinds.count("lost") == 1
    assert kinds.count("open") == 5
    # open stages come first, in funnel order (probabilities rise)
    probs = [s.probability for s in playbook.open_stages]
    assert probs == sorted(probs)
    assert len(set(probs)) == len(probs)


def test_bundled_playbook_questions_link_to_known_evidence(playbook):
    assert len(playbook.questions) == 9
    known = set(playbook.evidence_by_key)
    for q in playbook.questions:
        assert q.evidence, q.key
        assert set(q.evidence) <= known, q.key
    # every stage exit evidence and every evidence field is known too
    for s in playbook.stages:
        assert set(s.exit_evidence) <= known, s.key
    for e in playbook.evidence:
        assert set(e.fields) <= DEAL_FIELDS, e.key


def test_bundled_playbook_risks_triggers_and_tiers(playbook):
    assert len(playbook.risk_types) >= 5
    assert len({r.key for r in playbook.risk_types}) == len(playbook.risk_types)
    assert playbook.deal_desk_triggers
    assert {t.field for t in playbook.deal_desk_triggers} <= DEAL_FIELDS
    discount = [t for t in playbook.deal_desk_triggers if t.field == "discount_pct"]
    assert discount and discount[0].op in (">", ">=")
    tiers = playbook.handoff_tiers
    assert len(tiers) >= 2
    last = tiers[-1]
    assert last.min_amount is None and not last.complexity and last.min_open_high_risks is None
    # every earlier tier has at least one condition (otherwise later tiers were unreachable)
    for t in tiers[:-1]:
        assert t.min_amount is not None or t.complexity or t.min_open_high_risks is not None, t.key


def test_bundled_playbook_crm_stage_map(playbook):
    won = [s.key for s in playbook.stages if s.kind == "won"][0]
    assert playbook.map_stage("closedwon") == won
    assert playbook.map_stage("Negotiation/Review") == "commit"
    assert playbook.map_stage("  NEGOTIATION/REVIEW ") == "commit"
    assert playbook.map_stage("Closed Won") == won
    # labels and keys map too; unknown names do not
    assert playbook.map_stage("Commercial review") == "commercial_review"
    assert playbook.map_stage("qualification") == "qualification"
    assert playbook.map_stage("no such stage") is None
    assert playbook.map_category("Best Case") == "best_case"
    assert playbook.map_category("nonsense") is None


def test_load_playbook_from_file_equals_bundled(playbook):
    assert load_playbook(DEFAULT_TOML) == playbook


# -- parse_playbook rejects, naming the key path --------------------------------------------


def test_invalid_toml():
    with pytest.raises(PlaybookError) as err:
        parse_playbook('name = "unterminated\nversion = 1\n', "broken.toml")
    assert len(err.value.problems) == 1
    assert "TOML" in err.value.problems[0]
    assert "broken.toml" in str(err.value)


def test_missing_required_key(raw):
    problems = problems_for(raw, lambda d: d.pop("thresholds"))
    assert any(p.startswith("thresholds:") and "missing" in p for p in problems), problems


def test_missing_nested_key(raw):
    problems = problems_for(raw, lambda d: d["thresholds"].pop("stale_activity_days"))
    assert any(p.startswith("thresholds.stale_activity_days:") and "missing" in p for p in problems), problems


def test_unknown_key_in_stage(raw):
    problems = problems_for(raw, lambda d: d["stages"][2].update(colour="red"))
    assert any(p.startswith("stages[2].colour:") and "unknown key" in p for p in problems), problems


def test_wrong_type(raw):
    problems = problems_for(raw, lambda d: d["stages"][1].update(probability="high"))
    assert len(problems) == 1
    assert problems[0].startswith("stages[1].probability:")
    assert "integer" in problems[0]


def test_out_of_range_value(raw):
    problems = problems_for(raw, lambda d: d["stages"][0].update(probability=150))
    assert any(p.startswith("stages[0].probability:") for p in problems), problems


def test_unknown_exit_evidence(raw):
    def mutate(d):
        d["stages"][2]["exit_evidence"] = ["scope_defined", "telepathy"]

    problems = problems_for(raw, mutate)
    assert problems == ["stages[2].exit_evidence[1]: unknown evidence 'telepathy'"]


def test_unknown_progress_type(raw):
    def mutate(d):
        d["evidence"][0]["progress"] = ["buyer_smiled"]

    problems = problems_for(raw, mutate)
    assert len(problems) == 1
    assert problems[0].startswith("evidence[0].progress[0]:")
    assert "buyer_smiled" in problems[0]


def test_unknown_commit_check(raw):
    problems = problems_for(raw, lambda d: d["commit_criteria"][3].update(check="gut_feeling"))
    assert len(problems) == 1
    assert problems[0].startswith("commit_criteria[3].check:")
    assert "gut_feeling" in problems[0]


def test_unknown_evidence_in_commit_check(raw):
    problems = problems_for(raw, lambda d: d["commit_criteria"][0].update(check="evidence:nope"))
    assert len(problems) == 1
    assert problems[0].startswith("commit_criteria[0].check:")


def test_duplicate_stage_key(raw):
    def mutate(d):
        d["stages"][3]["key"] = d["stages"][1]["key"]

    problems = problems_for(raw, mutate)
    dupes = [p for p in problems if "duplicate" in p]
    assert dupes and dupes[0].startswith("stages[3].key:"), problems
    assert repr(raw["stages"][1]["key"]) in dupes[0]


def test_unknown_deal_field_in_trigger(raw):
    problems = problems_for(raw, lambda d: d["deal_desk_triggers"][1].update(field="mood"))
    assert problems == ["deal_desk_triggers[1].field: unknown deal field 'mood'"]


def test_crm_stage_map_to_unknown_stage(raw):
    problems = problems_for(raw, lambda d: d["crm_stage_map"].update(closedwon="victory"))
    assert len(problems) == 1
    assert problems[0].startswith("crm_stage_map.")
    assert "closedwon" in problems[0] and "victory" in problems[0]


def test_last_handoff_tier_with_conditions(raw):
    problems = problems_for(raw, lambda d: d["handoff_tiers"][-1].update(min_amount=1000))
    last = len(raw["handoff_tiers"]) - 1
    assert len(problems) == 1
    assert problems[0].startswith(f"handoff_tiers[{last}]")
    assert "condition" in problems[0]


def test_several_problems_reported_together(raw):
    def mutate(d):
        d["deal_desk_triggers"][0]["field"] = "mood"
        d["questions"][4]["evidence"] = ["nope"]

    problems = problems_for(raw, mutate)
    assert len(problems) == 2
    assert any(p.startswith("deal_desk_triggers[0].field:") for p in problems)
    assert any(p.startswith("questions[4].evidence[0]:") for p in problems)


def test_roundtrip_through_tomli_w_is_accepted(raw, playbook):
    assert parse_playbook(tomli_w.dumps(raw)) == playbook


# -- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cli_check_default_ok(runner):
    result = runner.invoke(main, ["playbook", "check", str(DEFAULT_TOML)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout
    assert "7 stages" in result.stdout and "9 questions" in result.stdout
    assert result.stderr == ""


def test_cli_check_bad_file(runner, raw, tmp_path):
    data = copy.deepcopy(raw)
    data["stages"][2]["exit_evidence"] = ["telepathy"]
    data["deal_desk_triggers"][1]["field"] = "mood"
    bad = tmp_path / "bad.toml"
    bad.write_text(tomli_w.dumps(data), encoding="utf-8")
    result = runner.invoke(main, ["playbook", "check", str(bad)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    err_lines = result.stderr.strip().splitlines()
    assert len(err_lines) == 2, result.stderr
    assert all(str(bad) in line for line in err_lines)
    assert any("stages[2].exit_evidence[0]" in line and "telepathy" in line for line in err_lines)
    assert any("deal_desk_triggers[1].field" in line and "mood" in line for line in err_lines)
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_cli_check_invalid_toml_and_missing_file(runner, tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("name = [\n", encoding="utf-8")
    result = runner.invoke(main, ["playbook", "check", str(bad)])
    assert result.exit_code == 2
    assert "TOML" in result.stderr
    assert "Traceback" not in result.output
    missing = tmp_path / "nope.toml"
    result = runner.invoke(main, ["playbook", "check", str(missing)])
    assert result.exit_code == 2
    assert "nope.toml" in result.stderr
    assert "Traceback" not in result.output


def test_cli_check_non_utf8_file(runner, tmp_path):
    bad = tmp_path / "cp1252.toml"
    bad.write_bytes(default_playbook_text().replace("Opportunity", "Opportunité").encode("cp1252",
                                                                                          "replace"))
    result = runner.invoke(main, ["playbook", "check", str(bad)])
    assert result.exit_code == 2
    assert "UTF-8" in result.stderr
    assert "Traceback" not in result.output


def test_cli_init_then_check_and_refuse_overwrite(runner, tmp_path, playbook):
    target = tmp_path / "my-playbook.toml"
    result = runner.invoke(main, ["playbook", "init", str(target)])
    assert result.exit_code == 0, result.output
    assert target.exists()
    written = target.read_text(encoding="utf-8")
    # the written copy is the default playbook
    assert parse_playbook(written) == playbook

    result = runner.invoke(main, ["playbook", "check", str(target)])
    assert result.exit_code == 0, result.output

    target.write_text(written + "\n# my edits\n", encoding="utf-8")
    result = runner.invoke(main, ["playbook", "init", str(target)])
    assert result.exit_code == 2
    assert "exists" in result.stderr and "--force" in result.stderr
    assert "Traceback" not in result.output
    assert target.read_text(encoding="utf-8").endswith("# my edits\n")

    result = runner.invoke(main, ["playbook", "init", "--force", str(target)])
    assert result.exit_code == 0, result.output
    assert not target.read_text(encoding="utf-8").endswith("# my edits\n")
    assert runner.invoke(main, ["playbook", "check", str(target)]).exit_code == 0


def test_cli_show_lists_the_nine_questions(runner, playbook):
    result = runner.invoke(main, ["playbook", "show"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for i, q in enumerate(playbook.questions, 1):
        assert f"{i}. {q.text}" in out
    assert "10. " not in out
    for s in playbook.stages:
        assert s.label in out


def test_cli_show_explicit_path_uses_that_playbook(runner, raw, tmp_path):
    data = copy.deepcopy(raw)
    data["questions"][0]["text"] = "Qu'est-ce que le client veut résoudre ?"
    path = tmp_path / "fr.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    result = runner.invoke(main, ["playbook", "show", str(path)])
    assert result.exit_code == 0, result.output
    assert "1. Qu'est-ce que le client veut résoudre ?" in result.stdout
