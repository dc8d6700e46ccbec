"""Drives infraai-server's MCP interface with the official MCP Python SDK
(PyPI `mcp`, pinned in requirements.txt), over Streamable HTTP and stdio.

Env: INFRAAI_URL (the server), INFRAAI_OPERATOR_TOKEN, INFRAAI_MCP_READ_TOKEN,
INFRAAI_MCP_PROPOSE_TOKEN, INFRAAI_INCIDENTS (three escalated incident ids,
comma separated), INFRAAI_SERVER_BIN and INFRAAI_DATA_DIR (for stdio).
Prints `mcp-test: …` lines and ends with `mcp-test: ok`; any failed check
raises.
"""

import asyncio
import json
import os

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

BASE = os.environ["INFRAAI_URL"]
OPERATOR = os.environ["INFRAAI_OPERATOR_TOKEN"]
READ = os.environ["INFRAAI_MCP_READ_TOKEN"]
PROPOSE = os.environ["INFRAAI_MCP_PROPOSE_TOKEN"]
FIRST, OUTSIDE, LATER = os.environ["INFRAAI_INCIDENTS"].split(",")
ME = Implementation(name="infraai-acceptance", version="1.0")
TOOLS = {
    "list_incidents", "get_incident", "get_run", "list_deployments", "get_metric_series",
    "autonomy_state", "plan_goal", "dry_run_action", "propose_action", "stop_autonomy",
}
SCALE_UP = {"type": "scale_up", "machine_type": "e2-standard-2"}


def step(message):
    print("mcp-test: " + message, flush=True)


def data(result):
    """A tool result's JSON, failing on a tool error."""
    text = result.content[0].text
    assert not result.is_error, text
    return json.loads(text)


def http_client(token):
    headers = {"Authorization": f"Bearer {token}"}
    hc = httpx2.AsyncClient(headers=headers, timeout=60)
    return hc, Client(streamable_http_client(BASE + "/mcp", http_client=hc), client_info=ME)


async def web(method, path, status=200):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=60) as w:
        r = await w.request(method, BASE + path, json={})
        assert r.status_code == status, (path, r.status_code, r.text)
        return r.json()


async def wait_status(client, incident, want):
    for _ in range(150):
        got = data(await client.call_tool("get_incident", {"id": incident}))["incident"]["status"]
        if got == want:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"incident {incident} never became {want} (is {got})")


async def over_http():
    hc, client = http_client(PROPOSE)
    async with hc, client as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == TOOLS, names
        step(f"http: {len(names)} tools listed")
        detail = data(await c.call_tool("get_incident", {"id": FIRST}))
        assert detail["incident"]["status"] == "escalated", detail["incident"]["status"]
        resources = [r.uri for r in (await c.list_resources()).resources]
        assert f"infraai://incidents/{FIRST}" in resources, resources
        attached = json.loads((await c.read_resource(f"infraai://incidents/{FIRST}")).contents[0].text)
        assert attached["incident"]["id"] == FIRST
        step("http: read the escalated incident, as a tool and as a resource")
        preview = data(await c.call_tool("dry_run_action", {"incident_id": FIRST, "action": SCALE_UP}))
        assert preview["cost_text"].endswith("/month"), preview
        step("http: dry run: " + preview["preview"]["summary"] + " · cost change: " + preview["cost_text"])
        proposed = data(await c.call_tool("propose_action", {
            "incident_id": FIRST, "action": SCALE_UP, "confidence": 0.99,
            "reasoning": "CPU-bound; one step up the ladder",
        }))
        assert proposed["status"] == "pending", proposed
        step("http: a confident proposal waits for a human: " + proposed["outcome"])
        approved = await web("POST", f"/ops/alerts/{FIRST}/approve")
        step("web: approved: " + approved["message"])
        await wait_status(c, FIRST, "resolved")
        again = await c.call_tool("propose_action", {
            "incident_id": FIRST, "action": SCALE_UP, "reasoning": "again"})
        assert again.is_error, "a resolved incident took a proposal"
        outside = await c.call_tool("propose_action", {
            "incident_id": OUTSIDE, "action": {"type": "scale_up", "machine_type": "e2-standard-16"},
            "reasoning": "much bigger"})
        assert outside.is_error and "guardrails refuse" in outside.content[0].text, outside.content[0].text
        step("http: outside the ladder: " + outside.content[0].text)
        stopped = data(await c.call_tool("stop_autonomy", {"reason": "assistant saw a bad deploy"}))
        assert stopped["effective"], stopped
        # `api` is e2-standard-2 now: the next step up.
        later = data(await c.call_tool("propose_action", {
            "incident_id": LATER, "action": {"type": "scale_up", "machine_type": "e2-standard-4"},
            "reasoning": "while stopped"}))
        assert later["status"] == "blocked", later
        step("http: after stop_autonomy a proposal is recorded, blocked")
        refused = await web("POST", f"/ops/alerts/{LATER}/approve", status=409)
        assert "nothing was executed" in refused["detail"], refused
        step("web: approving it while stopped: " + refused["detail"])
        state = data(await c.call_tool("autonomy_state", {}))
        assert state["kill_switch"]["engaged"], state


async def read_only():
    hc, client = http_client(READ)
    async with hc, client as c:
        listed = data(await c.call_tool("list_incidents", {"statuses": ["blocked"]}))
        assert [i["id"] for i in listed["incidents"]] == [LATER], listed
        refused = None
        try:
            await c.call_tool("propose_action", {"incident_id": OUTSIDE, "action": SCALE_UP, "reasoning": "x"})
        except Exception as e:  # the SDK raises the JSON-RPC error
            refused = str(e)
        assert refused and "propose scope" in refused, refused
        step("http: a read-only token cannot propose: " + refused)
        # The token's budget (INFRAAI_MCP_CALLS_PER_MINUTE) runs out.
        budget = int(os.environ["INFRAAI_MCP_CALLS_PER_MINUTE"])
        limited = None
        for n in range(budget + 1):
            try:
                await c.call_tool("autonomy_state", {})
            except Exception as e:  # noqa: BLE001
                limited = (n, str(e))
                break
        assert limited and "rate limit" in limited[1] and limited[0] < budget, limited
        step(f"http: the read token's budget ran out after {limited[0]} more calls: {limited[1]}")
    bad = None
    try:
        hc, client = http_client("not-a-token")
        async with hc, client as c:
            await c.list_tools()
    except BaseException as e:  # noqa: BLE001 (an ExceptionGroup from the transport)
        bad = repr(e)
    assert bad is not None, "a wrong token was let in"
    step("http: a wrong token is refused")


async def over_stdio():
    """The same flow from a local assistant: refused outside the ladder,
    then a proposal that waits for the web approval and runs once."""
    await web("POST", "/ops/autonomy/resume")
    step("web: autonomy resumed")
    params = StdioServerParameters(
        command=os.environ["INFRAAI_SERVER_BIN"],
        args=["mcp", "--data-dir", os.environ["INFRAAI_DATA_DIR"], "--cloud", "simulated"],
        env={**os.environ, "RUST_LOG": "warn"},
    )
    async with Client(params, client_info=ME) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == TOOLS, names
        detail = data(await c.call_tool("get_incident", {"id": OUTSIDE}))
        assert detail["incident"]["status"] == "escalated", detail["incident"]["status"]
        # `api` is e2-standard-2 now.
        outside = await c.call_tool("propose_action", {
            "incident_id": OUTSIDE, "action": {"type": "scale_up", "machine_type": "e2-standard-16"},
            "reasoning": "much bigger"})
        assert outside.is_error and "guardrails refuse" in outside.content[0].text, outside.content[0].text
        proposed = data(await c.call_tool("propose_action", {
            "incident_id": OUTSIDE, "action": {"type": "scale_up", "machine_type": "e2-standard-4"},
            "confidence": 0.95, "reasoning": "one step up again"}))
        assert proposed["status"] == "pending", proposed
        step("stdio: tools listed, incident read, outside the ladder refused, a proposal waits")
        await web("POST", f"/ops/alerts/{OUTSIDE}/approve")
        await wait_status(c, OUTSIDE, "resolved")
        step("stdio: approved on the web, executed, resolved")


async def main():
    await over_http()
    await read_only()
    await over_stdio()
    step("ok")


asyncio.run(main())
