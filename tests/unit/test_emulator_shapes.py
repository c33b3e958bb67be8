"""The emulators' JSON goes through the vendors' official clients (hubspot-api-client models,
simple-salesforce over TLS), so the emulators cannot drift from the real shapes."""
from __future__ import annotations

import pytest

from tests.emulators.base import Fault, make_cert
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator

hubspot = pytest.importorskip("hubspot", reason="hubspot-api-client (test extra) is not installed")
simple_salesforce = pytest.importorskip("simple_salesforce", reason="simple-salesforce (test extra) is not installed")


@pytest.fixture
def hs():
    emu = HubSpotEmulator(deals=60)
    yield emu
    emu.close()


def _client(emu):
    from hubspot import HubSpot

    return HubSpot(access_token=emu.token, host=emu.url)


def test_hubspot_deal_pages_with_history_and_associations_parse(hs):
    api = _client(hs).crm.deals.basic_api
    page = api.get_page(limit=50, properties=["dealname", "amount", "closedate", "dealstage", "hs_lastmodifieddate"],
                        properties_with_history=["dealstage", "amount", "closedate"],
                        associations=["calls", "emails", "meetings", "notes", "tasks", "companies"])
    assert len(page.results) == 50
    deal = page.results[0]
    assert isinstance(deal.properties["amount"], str)  # every property value is a string
    history = deal.properties_with_history["dealstage"]
    assert history[0].timestamp >= history[-1].timestamp  # newest first
    assert deal.associations["calls"].results[0].type == "deal_to_call"
    after = page.paging.next.after
    rest = api.get_page(limit=50, after=after, properties=["dealname"])
    assert rest.paging is None or rest.paging.next.after  # absent on the last page
    assert {d.id for d in rest.results}.isdisjoint({d.id for d in page.results})


def test_hubspot_search_batch_pipelines_owners_and_associations_parse(hs):
    from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
    from hubspot.crm.deals import BatchReadInputSimplePublicObjectId, PublicObjectSearchRequest

    c = _client(hs)
    found = c.crm.deals.search_api.do_search(PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}], limit=10, after="0",
        properties=["dealname"]))
    assert found.total == 60 and found.paging.next.after == "10"
    batch = c.crm.deals.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": r.id} for r in found.results], properties=["dealname"], properties_with_history=["amount"]))
    assert batch.status == "COMPLETE" and len(batch.results) == 10
    pipes = c.crm.pipelines.pipelines_api.get_all("deals")
    stage = pipes.results[0].stages[0]
    assert stage.metadata["probability"] == "0.2" and stage.metadata["isClosed"] == "false"
    owners = c.crm.owners.owners_api.get_page(limit=100)
    assert owners.results[0].teams[0].name
    assoc = c.crm.associations.v4.batch_api.get_page("deals", "calls", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": found.results[0].id}]))
    assert assoc.results[0].to[0].association_types[0].type_id == 206
    calls = c.crm.objects.calls.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": assoc.results[0].to[0].to_object_id}], properties=["hs_call_title", "hs_timestamp"]))
    assert calls.results[0].properties["hs_call_title"]


def test_hubspot_batch_update_207_and_errors_parse(hs):
    from hubspot.crm.deals import ApiException, BatchInputSimplePublicObjectBatchInput

    c = _client(hs)
    ids = hs.order[:3]
    hs.fail_update_ids = {ids[1]}
    body = BatchInputSimplePublicObjectBatchInput(inputs=[{"id": i, "properties": {"hs_next_step": "x"}} for i in ids])
    result = c.crm.deals.batch_api.update(body)
    assert type(result).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert result.num_errors == 1 and result.errors[0].context["ids"] == [ids[1]]
    hs.add_fault(Fault(status=429, path="/crm/v3/objects/deals", body={
        "status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
        "correlationId": "x", "policyName": "DAILY", "requestId": "y"}))
    with pytest.raises(ApiException) as info:
        c.crm.deals.basic_api.get_page(limit=5)
    assert info.value.status == 429
    bad = HubSpotEmulator(deals=1)
    try:
        from hubspot import HubSpot

        with pytest.raises(ApiException) as info:
            HubSpot(access_token="wrong", host=bad.url).crm.deals.basic_api.get_page(limit=1)
        assert info.value.status == 401 and "INVALID_AUTHENTICATION" in info.value.body
    finally:
        bad.close()


def test_hubspot_note_create_parses(hs):
    from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate

    note = _client(hs).crm.objects.notes.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"hs_note_body": "hello", "hs_timestamp": "2026-12-01T00:00:00Z"},
        associations=[{"to": {"id": hs.order[0]}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                             "associationTypeId": 214}]}]))
    assert note.id and note.properties["hs_note_body"] == "hello"


@pytest.fixture
def sf_tls(tmp_path, monkeypatch):
    cert, key = make_cert(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # simple-salesforce always speaks https
    emu = SalesforceEmulator(opportunities=450, tls=(cert, key))
    yield emu
    emu.close()


def _sf(emu):
    from simple_salesforce import Salesforce

    return Salesforce(instance_url=emu.url, session_id=emu.token, version="59.0")


def test_simple_salesforce_reads_the_emulator(sf_tls):
    sf = _sf(sf_tls)
    rows = sf.query_all("SELECT Id, Name, Account.Name, Owner.Name, StageName, Amount, CloseDate, "
                        "ForecastCategoryName, SystemModstamp FROM Opportunity ORDER BY SystemModstamp, Id")
    assert rows["totalSize"] == 450 and len(rows["records"]) == 450 and rows["done"]
    first = rows["records"][0]
    assert first["attributes"]["type"] == "Opportunity" and first["Account"]["Name"]
    assert first["SystemModstamp"].endswith("+0000")
    assert sf.api_usage["api-usage"].used > 0
    hist = sf.query("SELECT OpportunityId, StageName, Amount, CloseDate, CreatedDate FROM OpportunityHistory "
                    f"WHERE OpportunityId IN ('{first['Id']}')")
    assert hist["records"] and hist["records"][0]["OpportunityId"] == first["Id"]
    # paging: the client follows nextRecordsUrl itself
    page = sf.query("SELECT Id FROM Task", headers={"Sforce-Query-Options": "batchSize=200"})
    assert not page["done"] and page["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    more = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert more["records"][0]["Id"] != page["records"][0]["Id"]


def test_simple_salesforce_writes_and_errors(sf_tls):
    from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest, \
        SalesforceRefusedRequest

    sf = _sf(sf_tls)
    opp = sf_tls.order[0]
    assert sf.Opportunity.update(opp, {"NextStep": "Call the CFO"}) == 204
    assert sf.Opportunity.get(opp)["NextStep"] == "Call the CFO"
    task = sf.Task.create({"WhatId": opp, "Subject": "Inspection", "Status": "Completed"})
    assert task["success"] and task["id"].startswith("00T")
    sf_tls.fail_update_ids = {sf_tls.order[1]}
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Opportunity"}, "id": i, "NextStep": "x"} for i in sf_tls.order[:3]]})
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT Nope FROM Opportunity")
    sf_tls.add_fault(Fault(status=403, body=[{"message": "TotalRequests Limit exceeded.",
                                              "errorCode": "REQUEST_LIMIT_EXCEEDED"}]))
    with pytest.raises(SalesforceRefusedRequest):
        sf.query("SELECT Id FROM Opportunity")
    from simple_salesforce import Salesforce

    with pytest.raises(SalesforceExpiredSession):
        Salesforce(instance_url=sf_tls.url, session_id="wrong", version="59.0").query("SELECT Id FROM Opportunity")
