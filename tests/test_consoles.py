"""Remote (VNC) consoles: Nova remote-consoles (2.6+) and os-getVNCConsole, the ECS v1 remote_console, the
simulated console page behind their URLs, and every refusal (state, protocol/type, microversion, token).
A server with a VNC display (the local driver) and its websocket: tests/test_local_vnc.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ecsd.domain import consoles
from tests import support as s
from tests.sdk_server import ecsd_server  # noqa: F401
from tests.support import Api, assert_error, held

BOTH_DATABASES = True

NOVA = "/v2.1/{pid}/servers/%s/remote-consoles"
V1 = "/v1/{pid}/cloudservers/%s/remote_console"
ACTION = "/v2.1/{pid}/servers/%s/action"
MV = {"X-OpenStack-Nova-API-Version": "2.6"}
BODY = {"remote_console": {"protocol": "vnc", "type": "novnc"}}
UNKNOWN = "0b4e9c1a-7d2f-4e8b-9a6c-3f5d2e1b0c9a"


@pytest.fixture
def server(api) -> str:
    return api.create_servers(name="console-me")[0]


def sdk(raw: dict, response_type: str) -> Any:
    pytest.importorskip("huaweicloudsdkecs")
    from huaweicloudsdkecs.v2 import EcsClient

    from tests.sdk_models import check_model

    model = EcsClient()._deserialize(raw, response_type)
    assert check_model(model, raw, top=True) == []
    return model


def token_of(url: str) -> str:
    parts = urlsplit(url)
    assert parts.path == consoles.CONSOLE_PATH
    return parse_qs(parts.query)["token"][0]


def page(api: Api, url: str):
    parts = urlsplit(url)
    return api.client.get(f"{parts.path}?{parts.query}")


# --- success ------------------------------------------------------------------------------------------------

def test_nova_remote_console_gives_a_simulated_page_with_the_console_output(api, server):
    r = api.post(NOVA % server, BODY, headers=MV)
    assert r.status_code == 200, r.text
    console = r.json()["remote_console"]
    assert console["protocol"] == "vnc" and console["type"] == "novnc"
    assert console["url"].startswith("http")
    shown = page(api, console["url"])
    assert shown.status_code == 200, shown.text
    assert shown.headers["content-type"].startswith("text/html")
    assert shown.headers["cache-control"] == "no-store"
    assert "simulated" in shown.text and "console-me" in shown.text
    assert f"ecsd simulated machine for server {server}" in shown.text
    # a new, unguessable token per request
    urls = [api.post(NOVA % server, BODY, headers=MV).json()["remote_console"]["url"] for _ in range(3)]
    tokens = {token_of(u) for u in [console["url"], *urls]}
    assert len(tokens) == 4 and all(len(t) >= 64 for t in tokens)
    assert server not in "".join(tokens)      # sealed, not readable


def test_ecs_v1_remote_console_with_the_sdks_request_and_response_models(api, server):
    pytest.importorskip("huaweicloudsdkecs")
    from huaweicloudsdkecs.v2 import GetServerRemoteConsoleOption, ShowServerRemoteConsoleRequestBody

    body = ShowServerRemoteConsoleRequestBody(remote_console=GetServerRemoteConsoleOption(protocol="vnc", type="novnc"))
    r = api.post(V1 % server, body.to_dict())
    assert r.status_code == 200, r.text
    model = sdk(r.json(), "ShowServerRemoteConsoleResponse")
    assert model.remote_console.protocol == "vnc" and model.remote_console.type == "novnc"
    assert page(api, model.remote_console.url).status_code == 200


def test_os_get_vnc_console_action(api, server):
    r = api.post(ACTION % server, {"os-getVNCConsole": {"type": "novnc"}})
    assert r.status_code == 200, r.text
    console = r.json()["console"]
    assert console["type"] == "novnc"
    assert page(api, console["url"]).status_code == 200


# --- refusals -----------------------------------------------------------------------------------------------

@pytest.mark.sqlite_only
def test_remote_consoles_need_microversion_2_6(api, server):
    assert_error(api.post(NOVA % server, BODY), 404, "Common.0404")
    assert_error(api.post(NOVA % server, BODY, headers={"X-OpenStack-Nova-API-Version": "2.5"}), 404, "Common.0404")
    r = api.post(NOVA % server, BODY, headers={"OpenStack-API-Version": "compute 2.60"})
    assert r.status_code == 200, r.text


@pytest.mark.sqlite_only
def test_protocol_and_type_are_validated(api, server):
    bad = [{"protocol": "spice", "type": "novnc"}, {"protocol": "vnc", "type": "xvpvnc"},
           {"protocol": "vnc"}, {"protocol": 1, "type": "novnc"}, {"protocol": "vnc", "type": "novnc", "x": 1}]
    for console in bad:
        assert_error(api.post(NOVA % server, {"remote_console": console}, headers=MV), 400, "Ecs.0005")
        assert_error(api.post(V1 % server, {"remote_console": console}), 400, "Ecs.0005")
    assert_error(api.post(V1 % server, {}), 400, "Ecs.0005")
    for args in ({"type": "spice-html5"}, {}, None, {"type": "novnc", "x": 1}, "novnc"):
        assert_error(api.post(ACTION % server, {"os-getVNCConsole": args}), 400, "Ecs.0005")


def test_unknown_or_foreign_server_is_404(api, other_api, server):
    assert_error(api.post(NOVA % UNKNOWN, BODY, headers=MV), 404, "Ecs.0114")
    assert_error(api.post(V1 % "not-a-uuid", BODY), 404, "Ecs.0114")
    assert_error(api.post(f"/v1/{other_api.pid}/cloudservers/{server}/remote_console", BODY), 400, "Ecs.0023")
    assert_error(other_api.post(V1 % server, BODY), 404, "Ecs.0114")


def test_a_server_that_is_not_active_has_no_console(api, server):
    api.stop(server)
    assert_error(api.post(NOVA % server, BODY, headers=MV), 400, "Ecs.0100")
    assert_error(api.post(V1 % server, BODY), 400, "Ecs.0100")
    assert_error(api.post(ACTION % server, {"os-getVNCConsole": {"type": "novnc"}}), 400, "Ecs.0100")


def test_a_server_with_an_operation_in_flight_has_no_console(api, server):
    with held(api):
        r = api.post("/v1/{pid}/cloudservers/action", {"reboot": {"type": "SOFT", "servers": [{"id": server}]}})
        assert r.status_code == 200, r.text
        assert_error(api.post(V1 % server, BODY), 400, "Ecs.0100")
    api.wait_job(r.json()["job_id"])


@pytest.mark.sqlite_only
def test_a_driver_without_remote_consoles_gets_the_console_page(api, server, monkeypatch):
    """A driver that hands out no URLs of its own gets ecsd's console page; without VNC displays it shows
    the console output the driver keeps (with displays: noVNC, tests/test_local_vnc.py)."""
    driver = api.client.app.state.services.driver
    monkeypatch.setattr(type(driver), "remote_console", None)
    r = api.post(V1 % server, BODY)
    assert r.status_code == 200, r.text
    url = r.json()["remote_console"]["url"]
    assert consoles.CONSOLE_PATH + "?token=" in url
    page = api.client.get(url[url.index(consoles.CONSOLE_PATH):])
    assert page.status_code == 200 and "systemd" in page.text


@pytest.mark.sqlite_only
def test_the_page_refuses_missing_forged_and_expired_tokens(api, server, monkeypatch):
    assert_error(api.client.get(consoles.CONSOLE_PATH), 404, "Common.0404")
    assert_error(api.client.get(consoles.CONSOLE_PATH + "?token=abc"), 404, "Common.0404")
    assert_error(api.client.get(consoles.CONSOLE_PATH + "?token=" + "A" * 2000), 404, "Common.0404")
    url = api.post(V1 % server, BODY).json()["remote_console"]["url"]
    token = token_of(url)
    forged = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    assert_error(api.client.get(consoles.CONSOLE_PATH, params={"token": forged}), 404, "Common.0404")
    now = consoles.clock.now()
    monkeypatch.setattr(consoles.clock, "now", lambda: now + consoles.CONSOLE_TTL + 1)
    assert_error(page(api, url), 404, "Common.0404")


def test_the_page_of_a_deleted_server_is_404(api, server):
    url = api.post(V1 % server, BODY).json()["remote_console"]["url"]
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": server}]})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert_error(page(api, url), 404, "Ecs.0114")


@pytest.mark.sqlite_only
def test_the_page_escapes_the_console_output(api, server, monkeypatch):
    driver = api.client.app.state.services.driver

    async def hostile(server_id: str) -> str:
        return "<script>alert(1)</script>\n"

    monkeypatch.setattr(driver, "console_output", hostile)
    shown = page(api, api.post(V1 % server, BODY).json()["remote_console"]["url"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text and "<script>" not in shown.text


# --- openstacksdk, against a real ecsd ----------------------------------------------------------------------

@pytest.mark.slow
def test_openstacksdk_console_url_and_create_server_image(ecsd_server):  # noqa: F811
    """``openstack console url show`` and ``openstack server image create`` go through the SDK's own calls."""
    pytest.importorskip("openstack")
    from tests.test_sdk_openstack import connect, wait_job

    conn = connect(ecsd_server.base_url, ecsd_server.creds)
    base, pid = ecsd_server.base_url, ecsd_server.creds["project_id"]
    try:
        body = {"server": {"name": "sdk-console", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                           "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}}
        r = conn.session.post(f"{base}/v1/{pid}/cloudservers", json=body)
        job = wait_job(conn, base, pid, r.json()["job_id"])
        sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
        console = conn.compute.get_server_console_url(sid, "novnc")
        assert console["type"] == "novnc"
        assert httpx.get(console["url"], timeout=10).status_code == 200
        image = conn.compute.create_server_image(sid, "sdk-image", metadata={"purpose": "test"}, wait=False)
        assert image.id and conn.image.get_image(image.id).name == "sdk-image"
    finally:
        conn.close()
