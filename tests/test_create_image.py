"""Nova ``createImage``: a private image of a server's system disk, in every image listing with the right
types, usable for a change OS; and every refusal (body, state, lock, unknown or foreign server)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import support as s
from tests.support import Api, assert_error, held

BOTH_DATABASES = True

ACTION = "/v2.1/{pid}/servers/%s/action"
UNKNOWN = "0b4e9c1a-7d2f-4e8b-9a6c-3f5d2e1b0c9a"


@pytest.fixture
def server(api) -> str:
    return api.create_servers(s.EULER, size=50, flavor="s3.medium.2", name="golden")[0]


def create_image(api: Api, sid: str, name: str = "my-gold", metadata: dict | None = None):
    args: dict[str, Any] = {"name": name}
    if metadata is not None:
        args["metadata"] = metadata
    return api.post(ACTION % sid, {"createImage": args})


def made(api: Api, sid: str, **kw) -> str:
    r = create_image(api, sid, **kw)
    assert r.status_code == 202, r.text
    image_id = r.json()["image_id"]
    assert r.headers["location"].endswith(f"/v2/images/{image_id}")
    return image_id


def ims(raw: dict, response_type: str, client: str = "ims") -> Any:
    pytest.importorskip("huaweicloudsdkims")
    from huaweicloudsdkims.v2 import ImsClient

    from tests.sdk_models import check_model

    model = ImsClient()._deserialize(raw, response_type)
    assert check_model(model, raw, optional={"ListImagesResponse": {"page_info"}, "PageInfo": {"next_marker"}},
                       top=True) == []
    return model


# --- success ------------------------------------------------------------------------------------------------

def test_create_image_of_a_server_and_find_it_in_every_listing(api, other_api, server):
    image_id = made(api, server, metadata={"ImageType": "Gold", "ImageVersion": "2.0"})
    source = api.get(f"/v2/images/{s.EULER}").json()

    glance = api.get(f"/v2/images/{image_id}")
    assert glance.status_code == 200, glance.text
    image = glance.json()
    location = urlsplit(create_image(api, server, name="again").headers["location"]).path
    assert api.get(location).json()["name"] == "again"
    assert image["name"] == "my-gold" and image["status"] == "active"
    assert image["visibility"] == "private" and image["owner"] == api.pid and image["protected"] is False
    assert image["__imagetype"] == "private"
    assert image["min_disk"] == 50 and isinstance(image["min_disk"], int)      # the system disk, > EulerOS' 40
    assert image["min_ram"] == source["min_ram"] and isinstance(image["min_ram"], int)
    for key in ("__os_type", "__os_bit", "__platform", "__os_version", "__support_cloudinit", "hw_firmware_type",
                "virtual_env_type", "disk_format"):
        assert image[key] == source[key], key
    assert image["ImageType"] == "Gold" and image["ImageVersion"] == "2.0"
    assert image["image_type"] == "snapshot" and image["instance_uuid"] == server
    assert image["base_image_ref"] == s.EULER
    ims(image, "GlanceShowImageResponse")

    listed = api.get("/v2/cloudimages?__imagetype=private").json()
    assert image_id in [i["id"] for i in listed["images"]]
    ims(listed, "ListImagesResponse")
    assert image_id in [i["id"] for i in api.get("/v2/images?visibility=private").json()["images"]]
    nova = api.get(f"/v2.1/{{pid}}/images/{image_id}").json()["image"]
    assert nova["status"] == "ACTIVE" and nova["minDisk"] == 50 and nova["metadata"]["ImageType"] == "Gold"
    assert image_id in [i["id"] for i in api.get("/v2.1/{pid}/images/detail").json()["images"]]
    # private to the project
    assert_error(other_api.get(f"/v2/images/{image_id}"), 404, "Ecs.0031")
    assert image_id not in [i["id"] for i in other_api.get("/v2/cloudimages").json()["images"]]


def test_the_image_serves_a_change_os(api, server):
    image_id = made(api, server)
    target = api.create_servers(s.UBUNTU, size=60, flavor="s3.medium.2", name="changed")[0]
    api.stop(target)
    # EulerOS has Cloud-Init, and so has its image: the /v2 (Cloud-Init) change OS
    assert api.get(f"/v2/images/{image_id}").json()["__support_cloudinit"] == "true"
    r = api.post(f"/v2/{{pid}}/cloudservers/{target}/changeos", {"os-change": {"imageid": image_id,
                                                                             "adminpass": "Secr3t!Pass"}})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(target)["image"]["id"] == image_id


def test_a_stopped_server_can_be_imaged_and_the_action_is_recorded(api, server):
    api.stop(server)
    made(api, server)
    actions = api.get(f"/v2.1/{{pid}}/servers/{server}/os-instance-actions").json()["instanceActions"]
    assert "createImage" in [a["action"] for a in actions]


# --- refusals -----------------------------------------------------------------------------------------------

BAD_ARGS = [
    {}, {"name": ""}, {"name": "   "}, {"name": "x" * 243}, {"name": 1}, {"name": "n", "x": 1},
    {"name": "n", "metadata": "a"}, {"name": "n", "metadata": {"k": 1}}, {"name": "n", "metadata": {"": "v"}},
    {"name": "n", "metadata": {"k": "v" * 255}}, {"name": "n", "metadata": {"__ecsd_sim_fault": "start"}},
    {"name": "n", "metadata": {"__os_type": "Windows"}}, {"name": "n", "metadata": {"min_disk": "1"}},
    None, "n",
]


@pytest.mark.sqlite_only
def test_bad_arguments_are_ecs_0005_and_a_242_byte_name_is_accepted(api, server):
    for args in BAD_ARGS:
        assert_error(api.post(ACTION % server, {"createImage": args}), 400, "Ecs.0005")
    assert create_image(api, server, name="x" * 242).status_code == 202


def test_unknown_foreign_locked_and_busy_servers_are_refused(api, other_api, server):
    assert_error(create_image(api, UNKNOWN), 404, "Ecs.0114")
    assert_error(create_image(other_api, server), 404, "Ecs.0114")
    assert api.post(ACTION % server, {"lock": None}).status_code == 202
    assert_error(create_image(api, server), 400, "Ecs.0605")
    assert api.post(ACTION % server, {"unlock": None}).status_code == 202
    with held(api):
        r = api.post("/v1/{pid}/cloudservers/action", {"reboot": {"type": "SOFT", "servers": [{"id": server}]}})
        assert r.status_code == 200, r.text
        assert_error(create_image(api, server), 400, "Ecs.0100")
    api.wait_job(r.json()["job_id"])
    before = {i["id"] for i in api.get("/v2/images?limit=1000").json()["images"]}
    assert_error(create_image(api, server, name=""), 400, "Ecs.0005")
    assert {i["id"] for i in api.get("/v2/images?limit=1000").json()["images"]} == before


def test_a_server_in_error_cannot_be_imaged(api):
    r = api.post("/v1/{pid}/cloudservers", {"server": {
        "name": "broken", "imageRef": s.FAULTY_BOOT, "flavorRef": "s3.small.1", "vpcid": s.VPC,
        "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}})
    if r.status_code != 200:
        pytest.skip("no fault images in this catalogue")
    job = api.wait_job(r.json()["job_id"])
    sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
    if api.server(sid)["status"] != "ERROR":
        pytest.skip("the failed create left no server in ERROR")
    assert_error(create_image(api, sid), 400, "Ecs.0100")


def test_an_image_of_the_project_can_be_deleted_and_leaves_every_list(api, other_api, server):
    """Nova's discarded ``DELETE /v2.1/{project_id}/images/{id}`` and Glance's ``DELETE /v2/images/{id}``."""
    first, second = made(api, server, name="one"), made(api, server, name="two")
    # another project sees neither; a public image is protected; an unknown one is 404
    assert_error(other_api.delete(f"/v2.1/{{pid}}/images/{first}"), 404, "Ecs.0031")
    assert_error(api.delete(f"/v2.1/{{pid}}/images/{s.UBUNTU}"), 403, "Ecs.0003")
    assert_error(api.delete(f"/v2/images/{s.UBUNTU}"), 403, "Ecs.0003")
    assert_error(api.delete(f"/v2.1/{{pid}}/images/{UNKNOWN}"), 404, "Ecs.0031")
    assert_error(api.delete("/v2.1/{pid}/images/not-a-uuid"), 404, "Ecs.0031")

    assert api.delete(f"/v2.1/{{pid}}/images/{first}").status_code == 204
    assert api.delete(f"/v2/images/{second}").status_code == 204
    for gone in (first, second):
        assert_error(api.get(f"/v2.1/{{pid}}/images/{gone}"), 404, "Ecs.0031")
        assert_error(api.get(f"/v2/images/{gone}"), 404, "Ecs.0031")
        assert_error(api.delete(f"/v2.1/{{pid}}/images/{gone}"), 404, "Ecs.0031")    # once only
    listed = {i["id"] for i in api.get("/v2/images?limit=1000").json()["images"]}
    assert not listed & {first, second} and s.UBUNTU in listed
    # the server made from the first image keeps running and can still be shown
    assert api.server(server)["status"] == "ACTIVE"
