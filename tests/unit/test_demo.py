"""The deterministic demo generator, `demo.seed` and `inspector demo`."""
from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from inspector import demo
from inspector.cli import main

TODAY = date(2026, 12, 3)
END_OF_TODAY = datetime.combine(TODAY + timedelta(days=1), time(0), tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def generated(playbook):
    return demo.generate(playbook, 300, TODAY, seed=7)


@pytest.fixture(scope="module")
def by_deal(generated):
    deals, changes, acts, risks = generated
    ch, ac = defaultdict(list), defaultdict(list)
    for c in changes:
        ch[c["deal_id"]].append(c)
    for a in acts:
        ac[a["deal_id"]].append(a)
    return {d["id"]: d for d in deals}, ch, ac


def _open_index(playbook, stage: str) -> int:
    return [s.key for s in playbook.open_stages].index(stage)


# -- determinism --------------------------------------------------------------------------------


def test_same_arguments_same_output(playbook, generated):
    assert demo.generate(playbook, 300, TODAY, seed=7) == generated


def test_different_seed_different_output(playbook, generated):
    other = demo.generate(playbook, 300, TODAY, seed=8)
    assert other[0] != generated[0]
    assert [d["name"] for d in other[0]] != [d["name"] for d in generated[0]]


def test_different_today_shifts_dates(playbook, generated):
    later = demo.generate(playbook, 300, TODAY + timedelta(days=7), seed=7)
    assert later[0][0]["created_on"] == generated[0][0]["created_on"] + timedelta(days=7)


def test_n_deals_and_ids(playbook):
    deals, changes, acts, risks = demo.generate(playbook, 25, TODAY, seed=3)
    assert [d["id"] for d in deals] == list(range(1, 26))
    assert len({d["external_id"] for d in deals}) == 25


# -- shape ----------------------------------------------------------------------------------------


def test_every_stage_and_status_present(playbook, generated):
    deals = generated[0]
    stages = Counter(d["stage"] for d in deals)
    for s in playbook.stages:
        assert stages[s.key] > 0, s.key
    for d in deals:
        kind = playbook.stage_by_key[d["stage"]].kind
        assert d["status"] == kind, d["id"]  # open/won/lost agree with the stage kind
        assert d["forecast_category"] in playbook.category_by_key


def test_teams_managers_reps(generated):
    deals = generated[0]
    managers = defaultdict(set)
    reps = defaultdict(set)
    for d in deals:
        managers[d["team"]].add(d["manager"])
        reps[d["team"]].add(d["owner"])
    assert len(managers) >= 3
    for team in managers:
        assert len(managers[team]) == 1, team
        assert len(reps[team]) >= 3, team
        assert not managers[team] & reps[team]
    # a rep belongs to one team
    all_reps = [r for rs in reps.values() for r in rs]
    assert len(all_reps) == len(set(all_reps))


def test_history_has_pushes_backward_moves_amounts_and_categories(playbook, by_deal):
    deals, ch, _ = by_deal
    pushes = [c for cs in ch.values() for c in cs
              if c["field"] == "close_date" and c["new"] > c["old"]]
    assert len(pushes) >= 10
    open_keys = [s.key for s in playbook.open_stages]
    backward = [c for cs in ch.values() for c in cs if c["field"] == "stage"
                and c["old"] in open_keys and c["new"] in open_keys
                and open_keys.index(c["new"]) < open_keys.index(c["old"])]
    assert len(backward) >= 3
    amounts = [c for cs in ch.values() for c in cs if c["field"] == "amount_minor"]
    assert len(amounts) >= 10
    assert any(int(c["new"]) > int(c["old"]) for c in amounts)
    assert any(int(c["new"]) < int(c["old"]) for c in amounts)
    assert any(c["field"] == "forecast_category" for cs in ch.values() for c in cs)
    # every deal has exactly one creation record
    for deal_id in deals:
        assert sum(c["field"] == "created" for c in ch[deal_id]) == 1


def test_close_pushes_match_history(by_deal):
    deals, ch, _ = by_deal
    assert any(d["close_pushes"] >= 2 for d in deals.values())
    for deal_id, d in deals.items():
        pushed = sum(1 for c in ch[deal_id] if c["field"] == "close_date" and c["new"] > c["old"])
        assert d["close_pushes"] == pushed, deal_id


def test_activities_with_and_without_progress(playbook, generated, by_deal):
    acts = generated[2]
    progress = [a for a in acts if a["is_progress"]]
    seller = [a for a in acts if not a["is_progress"]]
    assert progress and seller
    assert all(a["progress_type"] in playbook.progress_label for a in progress)
    assert all(a["progress_type"] is None for a in seller)
    assert {a["kind"] for a in acts} <= set(playbook.activity_kinds)
    assert len({a["id"] for a in acts}) == len(acts)
    deals, _, ac = by_deal
    # deals with activity but no progress at all exist (the "activity is not progress" case)
    assert any(ac[i] and not any(a["is_progress"] for a in ac[i]) for i in deals)


def test_last_activity_and_progress_match_activities(by_deal):
    deals, _, ac = by_deal
    for deal_id, d in deals.items():
        acts = ac[deal_id]
        assert d["last_activity_at"] == max((a["occurred_at"] for a in acts), default=None)
        assert d["last_progress_at"] == max((a["occurred_at"] for a in acts if a["is_progress"]),
                                            default=None)


def test_some_evidence_filled_some_empty(playbook, generated):
    deals = [d for d in generated[0] if d["status"] == "open"]
    for f in ("business_problem", "decision_process", "economic_buyer", "contract_scope"):
        filled = [d for d in deals if d.get(f)]
        empty = [d for d in deals if not d.get(f)]
        assert filled and empty, f
    # later-stage deals tend to have more of the evidence their stage needs
    early = [d for d in deals if d["stage"] == "qualification"]
    late = [d for d in deals if d["stage"] == "commit"]
    share = lambda ds: sum(bool(d.get("business_problem")) for d in ds) / len(ds)  # noqa: E731
    assert share(late) > share(early)


def test_names_have_non_ascii_and_punctuation(generated):
    deals = generated[0]
    texts = [d["name"] for d in deals] + [d["account"] for d in deals] + \
        [d["owner"] for d in deals] + [d["manager"] for d in deals]
    assert any(not t.isascii() for t in texts)
    for ch in ("'", "&", ",", '"', "."):
        assert any(ch in t for t in texts), ch


def test_hostile_names_at_scale(playbook):
    deals = demo.generate(playbook, 2000, TODAY, seed=7)[0]
    assert any("[" in d["name"] for d in deals)


def test_ids_consistent(generated):
    deals, changes, acts, risks = generated
    ids = {d["id"] for d in deals}
    assert len(ids) == len(deals)
    assert {c["deal_id"] for c in changes} <= ids
    assert {a["deal_id"] for a in acts} <= ids
    assert {r["deal_id"] for r in risks} <= ids


# -- history is consistent with the deals --------------------------------------------------------


def test_no_history_after_today(generated):
    deals, changes, acts, _ = generated
    assert [c for c in changes if c["changed_at"] >= END_OF_TODAY] == []
    assert [a for a in acts if a["occurred_at"] >= END_OF_TODAY] == []


def test_creation_is_the_first_event(by_deal):
    deals, ch, _ = by_deal
    for deal_id, d in deals.items():
        first = min(ch[deal_id], key=lambda c: c["changed_at"])
        assert first["field"] == "created", deal_id
        assert first["changed_at"].date() == d["created_on"], deal_id


def test_history_in_time_order_ends_at_the_current_stage(by_deal):
    deals, ch, _ = by_deal
    for deal_id, d in deals.items():
        moves = sorted((c for c in ch[deal_id] if c["field"] in ("created", "stage")),
                       key=lambda c: c["changed_at"])
        assert moves[-1]["new"] == d["stage"], deal_id


def test_amount_history_in_time_order_ends_at_the_amount(by_deal):
    deals, ch, _ = by_deal
    for deal_id, d in deals.items():
        amounts = sorted((c for c in ch[deal_id] if c["field"] == "amount_minor"),
                         key=lambda c: c["changed_at"])
        for a, b in zip(amounts, amounts[1:]):
            assert a["new"] == b["old"], deal_id
        if amounts:
            assert int(amounts[-1]["new"]) == d["amount_minor"], deal_id


# -- seeding ------------------------------------------------------------------------------------


def test_seed_counts_match_store(sqlite_services, playbook, generated):
    store = sqlite_services.store
    result = demo.seed(store, playbook, TODAY, 300, seed=7)
    deals, changes, acts, risks = generated
    assert (result.deals, result.changes, result.activities) == (len(deals), len(changes), len(acts))
    with store.engine.connect() as conn:
        count = lambda t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()  # noqa: E731
        assert count("deal") == result.deals
        assert count("deal_change") == result.changes
        assert count("activity") == result.activities
        stored = conn.execute(text("SELECT deal_id, type, mitigation FROM risk")).all()
        won = {r[0] for r in conn.execute(text("SELECT id FROM deal WHERE status = 'won'"))}
    # every generated risk is stored; the rest are the closed-won handoff review's risks (demo_handoff)
    generated_risks = sorted((r["deal_id"], r["type"], r["mitigation"]) for r in risks)
    remaining = list(stored)
    for g in generated_risks:
        remaining.remove(g)
    assert {deal_id for deal_id, _, _ in remaining} <= won
    open_deals = [d for d in deals if d["status"] == "open"]
    rows = store.list_deals(TODAY)
    assert len(rows) == len(open_deals)
    by_id = {d["id"]: d for d in deals}
    for r in rows[:50]:
        d = by_id[r.id]
        assert (r.name, r.owner, r.stage, r.amount_minor) == (d["name"], d["owner"], d["stage"],
                                                               d["amount_minor"])
        assert r.close_date == d["close_date"].isoformat()
        assert r.days_in_stage == (TODAY - d["stage_entered_on"]).days


def _table_contents(path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
        out["indexes"] = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                      "ORDER BY name").fetchall()
    return out


def test_seed_in_a_helper_process_writes_the_same_store(tmp_path, playbook):
    """The parallel seed (generator in a helper process, indexes built after the load) gives
    exactly the rows and indexes of the in-process seed, and of a store whose indexes were
    kept up to date row by row."""
    from inspector.services import build_services

    contents = {}
    for how in ("inline", "parallel", "indexes kept"):
        path = tmp_path / f"{how.replace(' ', '_')}.db"
        svc = build_services(path, playbook=playbook)
        try:
            if how == "indexes kept":  # a row in `deal` first: the load keeps every index
                demo.seed(svc.store, playbook, TODAY, 1, seed=5, parallel=False)
                with svc.store.engine.begin() as conn:
                    conn.execute(text("DELETE FROM deal"))
                    # let the deleted deal's neighbours go too, so the stores can be compared
                    for t in ("handoff", "promise", "approval", "closed_lost_reason", "risk"):
                        conn.execute(text(f"DELETE FROM {t}"))
            result = demo.seed(svc.store, playbook, TODAY, 700, seed=9, parallel=how == "parallel",
                               history_weeks=2)
        finally:
            svc.store.engine.dispose()
        assert result.deals == 700
        contents[how] = _table_contents(path)
    assert contents["parallel"] == contents["inline"]
    assert contents["indexes kept"]["indexes"] == contents["inline"]["indexes"]
    assert contents["indexes kept"]["deal_change"] == contents["inline"]["deal_change"]
    assert len(contents["inline"]["indexes"]) >= 9  # deal, deal_change and activity keep theirs


def test_seed_generator_failure_leaves_the_store_untouched(sqlite_services, playbook):
    """A failure in the helper process reaches the caller with its traceback; the load rolls
    back, indexes included."""
    store = sqlite_services.store
    with store.engine.connect() as conn:
        before = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")).all()
    with pytest.raises(RuntimeError, match="(?s)demo generator failed.*TypeError"):
        demo.seed(store, playbook, "not a date", 50, parallel=True)  # type: ignore[arg-type]
    with store.engine.connect() as conn:
        after = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")).all()
        assert conn.execute(text("SELECT COUNT(*) FROM deal")).scalar_one() == 0
    assert after == before and len(before) > 9


def test_seed_on_postgres(services, playbook):
    result = demo.seed(services.store, playbook, TODAY, 120, seed=11)
    assert services.store.deal_count() == result.deals == 120
    assert len(services.store.list_deals(TODAY)) == sum(
        d["status"] == "open" for d in demo.generate(playbook, 120, TODAY, seed=11)[0])


# -- CLI ------------------------------------------------------------------------------------------


def _deals_in(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM deal").fetchone()[0]


def test_cli_demo_no_tui(tmp_path):
    target = tmp_path / "demo.db"
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--deals", "50", "--db", str(target), "--no-tui"])
    assert result.exit_code == 0, result.output
    assert _deals_in(target) == 50
    assert "50 deals" in result.stderr
    # a second run starts from a fresh file (no duplicates, no unique-key errors)
    result = runner.invoke(main, ["demo", "--deals", "50", "--db", str(target), "--no-tui",
                                  "--seed", "9"])
    assert result.exit_code == 0, result.output
    assert _deals_in(target) == 50


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1/test",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/test"])
def test_cli_demo_refuses_url(tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)  # where a mistaken relative SQLite path would land
    result = CliRunner().invoke(main, ["demo", "--deals", "5", "--no-tui", "--db", url])
    created = sorted(p.name for p in tmp_path.iterdir())
    assert result.exit_code == 2, (result.output, created)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("inspector: ")
    assert created == []


def test_cli_demo_bad_count(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--deals", "0", "--db", str(tmp_path / "x.db"),
                                       "--no-tui"])
    assert result.exit_code == 2
    assert not (tmp_path / "x.db").exists()
