"""Images over HTTP: IMS ``/v2/cloudimages``, Glance ``/v2/images`` and the Nova image proxy.

The public API cannot create images, so the few tests about private and deleted images put rows
into the store directly (``add_image``) and then look at them only through HTTP.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from ecsd.domain import clock, seed
from ecsd.drivers.local.images import FILE_KEY
from ecsd.drivers.simulated import FAULT_KEY
from ecsd.store.schema import images
from tests.support import (
    CENTOS,
    DATA_IMAGE,
    DEBIAN,
    EULER,
    FAULTY_BOOT,
    FAULTY_DISK,
    FEDORA_QUEUED,
    UBUNTU,
    UBUNTU_UEFI,
    WINDOWS,
    assert_error,
    token_request,
)

SEEDED = {UBUNTU, DEBIAN, CENTOS, EULER, UBUNTU_UEFI, WINDOWS, FEDORA_QUEUED, DATA_IMAGE, FAULTY_DISK, FAULTY_BOOT,
          seed.image_id("Standard_openSUSE_15_latest")}
OTHER_PROJECT = "f" * 32


def add_image(client, name: str, *, owner: str | None, visibility: str = "private",
              status: str = "active") -> str:
    image_id = str(uuid.uuid4())
    now = clock.now()
    with client.app.state.services.store.tx() as conn:
        conn.execute(images.insert().values(
            id=image_id, name=name, status=status, visibility=visibility, owner=owner, imagetype="private",
            os_type="Linux", os_bit="64", platform="Ubuntu", os_version="Ubuntu 22.04 server 64bit",
            min_disk=10, min_ram=0, disk_format="zvhd2", size=1024, virtual_env_type="FusionCompute",
            hw_firmware_type="bios", support_kvm=True, cloudinit=True, properties='{"custom_key": "v1"}',
            created_at=now, updated_at=now))
    return image_id


def ims(api, query: str = "", **kw) -> dict:
    r = api.get("/v2/cloudimages" + (f"?{query}" if query else ""), **kw)
    assert r.status_code == 200, r.text
    return r.json()


def ids(body: dict) -> list[str]:
    return [i["id"] for i in body["images"]]




# --- IMS list ----------------------------------------------------------------------------------------

def test_ims_lists_the_whole_catalogue_sorted_by_name(api):
    body = ims(api)
    assert set(ids(body)) == SEEDED
    keys = [(i["name"], i["id"]) for i in body["images"]]
    assert keys == sorted(keys)
    assert body["page_info"].get("next_marker") is None


def test_ims_image_view_fields(api):
    found = {i["id"]: i for i in ims(api)["images"]}
    ubuntu = found[UBUNTU]
    assert ubuntu["name"] == "Standard_Ubuntu_22.04_latest"
    assert ubuntu["status"] == "active" and ubuntu["visibility"] == "public"
    assert ubuntu["__imagetype"] == "gold"
    assert ubuntu["__os_type"] == "Linux" and ubuntu["__platform"] == "Ubuntu"
    assert ubuntu["__os_bit"] == "64" and ubuntu["__os_version"] == "Ubuntu 22.04 server 64bit"
    assert ubuntu["min_disk"] == 10 and ubuntu["min_ram"] == 1024
    assert ubuntu["disk_format"] == "zvhd2" and ubuntu["virtual_env_type"] == "FusionCompute"
    assert ubuntu["hw_firmware_type"] == "bios"
    assert ubuntu["__support_kvm"] == "true" and ubuntu["__isregistered"] == "true"
    assert ubuntu["__support_cloudinit"] == "true"
    assert isinstance(ubuntu["size"], int) and ubuntu["size"] > 0
    assert ubuntu["self"] == f"/v2/images/{UBUNTU}" and ubuntu["file"] == f"/v2/images/{UBUNTU}/file"
    assert ubuntu["schema"] == "/v2/schemas/image"
    assert ubuntu["tags"] == [] and ubuntu["protected"] is True      # public images cannot be deleted
    assert len(ubuntu["checksum"]) == 32
    assert ubuntu["created_at"].endswith("Z") and ubuntu["updated_at"].endswith("Z")
    assert found[DEBIAN]["__support_cloudinit"] == "false"
    # The attributes IMS adds to every image (docs/decisions.md, "Images and flavors").
    assert ubuntu["__image_size"] == str(ubuntu["size"])
    assert ubuntu["virtual_size"] == 10 * 1024**3 and ubuntu["max_ram"] == "0"
    assert ubuntu["active_at"] == ubuntu["created_at"] and found[FEDORA_QUEUED]["active_at"] == ""
    assert ubuntu["__image_source_type"] == "uds" and ubuntu["__root_origin"] == "file"
    assert ubuntu["__lazyloading"] == "true" and ubuntu["__sequence_num"] == "0"
    assert ubuntu["enterprise_project_id"] == "0" and ubuntu["_sys_enterprise_project_id"] == "0"
    assert ubuntu["__is_config_init"] == "true" and found[FEDORA_QUEUED]["__is_config_init"] == "false"
    assert ubuntu["__os_feature_list"] == "{}" and ubuntu["__support_agent_list"] == ""
    assert ubuntu["__data_origin"] == "" and ubuntu["__originalimagename"] == "" and ubuntu["__backup_id"] == ""
    assert ubuntu["__image_displayname"] == ubuntu["name"] and ubuntu["__system_support_market"] is False
    assert ubuntu["__support_fc_inject"] == "false" and found[DEBIAN]["__support_fc_inject"] == "true"
    assert ubuntu["__support_arm"] == "false" and ubuntu["hw_vif_multiqueue_enabled"] == "false"
    assert ubuntu["os_shutdown_timeout"] == "60" and ubuntu["__is_offshelved"] == "false"
    assert found[UBUNTU_UEFI]["hw_firmware_type"] == "uefi"
    assert found[FEDORA_QUEUED]["status"] == "queued"
    assert found[DATA_IMAGE]["virtual_env_type"] == "DataImage" and found[DATA_IMAGE]["disk_format"] == "raw"
    # Internal properties (the simulated driver's fault key) are never shown.
    assert FAULT_KEY not in found[FAULTY_BOOT] and FAULT_KEY not in ubuntu


@pytest.mark.parametrize("query, expected", [
    ("__os_type=Windows", {WINDOWS}),
    ("__platform=Ubuntu", {UBUNTU, UBUNTU_UEFI}),
    ("status=queued", {FEDORA_QUEUED}),
    ("status=deleted", set()),
    ("virtual_env_type=DataImage", {DATA_IMAGE}),
    ("disk_format=raw", {DATA_IMAGE}),
    (f"id={DEBIAN}", {DEBIAN}),
    ("name=Standard_CentOS_7_latest", {CENTOS}),
    ("__imagetype=gold", SEEDED),
    ("__imagetype=private", set()),
    ("__os_bit=32", set()),
    ("__support_kvm=true", SEEDED),
    ("__support_kvm=false", set()),
    ("visibility=public", SEEDED),
    ("visibility=private", set()),
    ("__isregistered=true", SEEDED),
    ("__os_type=Linux&__platform=Ubuntu&hw_firmware_type=uefi", {UBUNTU_UEFI}),
    ("__os_type=Linux&__support_cloudinit=true", {UBUNTU, UBUNTU_UEFI, EULER, FEDORA_QUEUED,
                                                  seed.image_id("Standard_openSUSE_15_latest")}),
    ("enterprise_project_id=0", SEEDED),
    ("enterprise_project_id=all_granted_eps", SEEDED),
    ("enterprise_project_id=0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", set()),
    ("protected=true", SEEDED),
    ("protected=True&visibility=public", SEEDED),
    ("protected=false", set()),
    ("__support_diskintensive=false&__support_largememory=false", SEEDED),
    ("__support_diskintensive=true", set()),
    ("__support_kvm_gpu_type=V100_vGPU", set()),
])
def test_ims_filters(api, query, expected):
    assert set(ids(ims(api, query))) == expected


@pytest.mark.parametrize("query", ["__support_kvm=yes", "__support_cloudinit=1", "name=" + "x" * 256])
def test_ims_bad_filter_values_are_400(api, query):
    assert_error(api.get(f"/v2/cloudimages?{query}"), 400, "Ecs.0005")


@pytest.mark.parametrize("limit", [1, 3, 4, 10])
def test_ims_paging_walks_every_image_exactly_once(api, limit):
    own = add_image(api.client, "Mine_private", owner=api.pid)
    everything = ids(ims(api))
    assert own in everything
    seen: list[str] = []
    marker = None
    for _ in range(50):
        query = f"limit={limit}" + (f"&marker={marker}" if marker else "")
        body = ims(api, query)
        assert len(body["images"]) <= limit
        seen.extend(ids(body))
        marker = body["page_info"].get("next_marker")
        if marker is None:
            break
        assert marker == body["images"][-1]["id"]
    assert seen == everything
    assert len(seen) == len(set(seen)) == len(SEEDED) + 1


def test_ims_sort_key_and_dir(api):
    body = ims(api, "sort_key=min_disk&sort_dir=desc")
    keys = [(i["min_disk"], i["id"]) for i in body["images"]]
    assert keys == sorted(keys, reverse=True)
    # Paging follows the same order.
    first = ims(api, "sort_key=min_disk&sort_dir=desc&limit=4")
    rest = ims(api, f"sort_key=min_disk&sort_dir=desc&marker={first['page_info']['next_marker']}")
    assert ids(first) + ids(rest) == ids(body)
    assert_error(api.get("/v2/cloudimages?sort_key=colour"), 400, "Ecs.0005")
    assert_error(api.get("/v2/cloudimages?sort_dir=sideways"), 400, "Ecs.0005")


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", "2.5"])
def test_ims_bad_limit_is_400(api, limit):
    assert_error(api.get(f"/v2/cloudimages?limit={limit}"), 400, "Ecs.0005")


def test_ims_limit_bounds_accepted(api):
    assert len(ims(api, "limit=1")["images"]) == 1
    assert len(ims(api, "limit=1000")["images"]) == len(SEEDED)


def test_ims_unknown_marker_is_400(api):
    assert_error(api.get(f"/v2/cloudimages?marker={uuid.uuid4()}"), 400, "Ecs.0005")
    assert_error(api.get("/v2/cloudimages?marker=not-an-id"), 400, "Ecs.0005")
    theirs = add_image(api.client, "Theirs", owner=OTHER_PROJECT)
    assert_error(api.get(f"/v2/cloudimages?marker={theirs}"), 400, "Ecs.0005")


def test_visibility_private_and_deleted_images(api):
    mine = add_image(api.client, "Mine", owner=api.pid)
    theirs = add_image(api.client, "Theirs", owner=OTHER_PROJECT)
    gone = add_image(api.client, "Gone", owner=None, visibility="public", status="deleted")
    listed = set(ids(ims(api)))
    assert mine in listed
    assert theirs not in listed and gone not in listed
    assert ids(ims(api, "visibility=private")) == [mine]
    assert ims(api, f"id={theirs}")["images"] == []
    mine_view = ims(api, f"id={mine}")["images"][0]
    assert mine_view["owner"] == api.pid and mine_view["__imagetype"] == "private"
    assert mine_view["custom_key"] == "v1"
    assert api.get(f"/v2/images/{mine}").status_code == 200
    assert api.get(f"/v2.1/{{pid}}/images/{mine}").status_code == 200
    for hidden in (theirs, gone):
        assert_error(api.get(f"/v2/images/{hidden}"), 404, "Ecs.0031")
        assert_error(api.get(f"/v2.1/{{pid}}/images/{hidden}"), 404, "Ecs.0031")
        assert hidden not in ids(api.get("/v2/images").json())
        assert hidden not in ids(api.get("/v2.1/{pid}/images/detail").json())


def test_x_project_id_must_match_the_token(api):
    assert ims(api, headers={"X-Project-Id": api.pid})["images"]
    for path in ("/v2/cloudimages", "/v2/images", f"/v2/images/{UBUNTU}"):
        assert_error(api.get(path, headers={"X-Project-Id": OTHER_PROJECT}), 400, "Ecs.0023")


@pytest.mark.parametrize("path", ["/v2/cloudimages", "/v2/images", f"/v2/images/{UBUNTU}",
                                  "/v2.1/{pid}/images", "/v2.1/{pid}/images/detail",
                                  f"/v2.1/{{pid}}/images/{UBUNTU}", f"/v2.1/{{pid}}/images/{UBUNTU}/metadata"])
def test_images_need_a_token(api, path):
    assert_error(api.get(path, token=False), 401, "Common.0013")
    assert_error(api.get(path, headers={"X-Auth-Token": "bogus"}), 401, "Common.0013")


# --- every view, every field, nothing internal ------------------------------------------------------

# The Glance core of an image object; every other field of the IMS view is an image property, which
# the Nova proxy shows as a metadata string.
GLANCE_CORE = {"id", "name", "status", "visibility", "owner", "min_disk", "min_ram", "disk_format",
               "container_format", "size", "virtual_size", "checksum", "protected", "tags", "created_at",
               "updated_at", "self", "file", "schema"}


def add_local_image(client, owner: str) -> str:
    """A row shaped like the one ``ecsd images import`` registers (drivers/local/images.py)."""
    image_id = str(uuid.uuid4())
    now = clock.now()
    with client.app.state.services.store.tx() as conn:
        conn.execute(images.insert().values(
            id=image_id, name="my-os-a", status="active", visibility="private", owner=owner, imagetype="private",
            os_type="Linux", os_bit="64", platform="Other", os_version="Debian GNU/Linux 12 (bookworm)",
            min_disk=2, min_ram=0, disk_format="raw", size=123_456_789, virtual_env_type="FusionCompute",
            hw_firmware_type="bios", support_kvm=True, cloudinit=False,
            properties=orjson.dumps({FILE_KEY: f"{image_id}.raw", "__ecsd_note": "x", "team": "a"}).decode(),
            created_at=now, updated_at=now))
    return image_id


def _image_responses(api, image_ids: list[str]):
    yield api.get("/v2/cloudimages")
    yield api.get("/v2/cloudimages?limit=2")
    yield api.get("/v2/images")
    yield api.get("/image/v2/images?limit=1000")
    yield api.get("/v2.1/{pid}/images")
    yield api.get("/v2.1/{pid}/images/detail")
    for image_id in image_ids:
        yield api.get(f"/v2/cloudimages?id={image_id}")
        yield api.get(f"/v2/images/{image_id}")
        yield api.get(f"/image/v2/images/{image_id}")
        yield api.get(f"/v2.1/{{pid}}/images/{image_id}")
        yield api.get(f"/v2.1/{{pid}}/images/{image_id}/metadata")


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def test_no_internal_property_reaches_any_image_view(api):
    local = add_local_image(api.client, api.pid)
    image_ids = [*SEEDED, local]
    count = 0
    for r in _image_responses(api, image_ids):
        assert r.status_code == 200, r.text
        assert "__ecsd" not in r.text, (r.url, [k for k in _keys(r.json()) if k.startswith("__ecsd")])
        count += 1
    assert count == 6 + 5 * len(image_ids)
    # The local image is there, with its public property, and the simulated faults still work.
    shown = api.get(f"/v2/images/{local}").json()
    assert shown["team"] == "a" and api.get(f"/v2.1/{{pid}}/images/{local}/metadata").json()["metadata"]["team"] == "a"


def test_local_image_row_view(api):
    local = add_local_image(api.client, api.pid)
    view = api.get(f"/v2/images/{local}").json()
    assert view["size"] == 123_456_789 and view["__image_size"] == "123456789"
    assert view["virtual_size"] == 2 * 1024**3
    assert view["__imagetype"] == "private" and view["protected"] is False and view["owner"] == api.pid
    assert view["__data_origin"] == "file" and view["__root_origin"] == "file"
    assert view["__support_fc_inject"] == "true" and view["__support_cloudinit"] == "false"
    assert view["active_at"] == view["created_at"]


def test_nova_views_carry_every_ims_attribute(api):
    ims_views = {i["id"]: i for i in ims(api)["images"]}
    detail = {i["id"]: i for i in api.get("/v2.1/{pid}/images/detail").json()["images"]}
    assert set(detail) == set(ims_views)
    for image_id, view in ims_views.items():
        expected = {k: (("true" if v else "false") if isinstance(v, bool) else str(v))
                    for k, v in view.items() if k not in GLANCE_CORE}
        assert detail[image_id]["metadata"] == expected
        assert api.get(f"/v2.1/{{pid}}/images/{image_id}/metadata").json()["metadata"] == expected
        assert detail[image_id]["OS-EXT-IMG-SIZE:size"] == view["size"]
        assert view.keys() >= GLANCE_CORE


# --- Glance ------------------------------------------------------------------------------------------

def test_glance_show_returns_the_image_at_top_level(api):
    r = api.get(f"/v2/images/{UBUNTU_UEFI}")
    assert r.status_code == 200
    image = r.json()
    assert image["id"] == UBUNTU_UEFI and image["hw_firmware_type"] == "uefi"
    assert image == next(i for i in ims(api)["images"] if i["id"] == UBUNTU_UEFI)


@pytest.mark.parametrize("image_id", ["5b0f1f5e-8a0e-4b5e-9f1e-2a3b4c5d6e7f", "not-a-uuid", UBUNTU.upper()])
def test_glance_show_unknown_is_404(api, image_id):
    assert_error(api.get(f"/v2/images/{image_id}"), 404, "Ecs.0031")


def test_glance_list_links_and_paging(api):
    r = api.get("/v2/images")
    body = r.json()
    assert r.status_code == 200
    assert set(ids(body)) == SEEDED and "next" not in body  # default page of 25 holds all
    assert body["first"] == "/v2/images" and body["schema"] == "/v2/schemas/images"
    everything = ids(body)
    seen: list[str] = []
    path = "/v2/images?limit=3&__os_type=Linux"
    while path:
        page = api.get(path).json()
        seen.extend(ids(page))
        assert page["first"] == "/v2/images?limit=3&__os_type=Linux"
        path = page.get("next")
        if path:
            query = parse_qs(urlsplit(path).query)
            assert query["limit"] == ["3"] and query["__os_type"] == ["Linux"]
            assert query["marker"] == [page["images"][-1]["id"]]
    linux = [i for i in everything if i not in (WINDOWS, DATA_IMAGE)]
    assert seen == linux


def test_glance_limit_is_capped_not_rejected(api):
    assert set(ids(api.get("/v2/images?limit=5000").json())) == SEEDED
    assert api.get("/v2/images?limit=0").json()["images"] == []
    assert_error(api.get("/v2/images?limit=-1"), 400, "Ecs.0005")
    assert_error(api.get("/v2/images?limit=x"), 400, "Ecs.0005")
    assert_error(api.get(f"/v2/images?marker={uuid.uuid4()}"), 400, "Ecs.0005")


# --- Nova image proxy --------------------------------------------------------------------------------

def test_nova_list_is_ids_names_links(api, settings):
    r = api.get("/v2.1/{pid}/images")
    assert r.status_code == 200
    body = r.json()
    assert set(ids(body)) == SEEDED and "images_links" not in body
    entry = next(i for i in body["images"] if i["id"] == DEBIAN)
    assert set(entry) == {"id", "name", "links"}
    assert entry["name"] == "Standard_Debian_12_latest"
    rels = {link["rel"]: link["href"] for link in entry["links"]}
    assert rels["self"] == f"{settings.endpoint}/v2.1/{api.pid}/images/{DEBIAN}"
    assert rels["alternate"] == f"{settings.endpoint}/v2/images/{DEBIAN}"


def test_nova_detail_and_show(api):
    detail = {i["id"]: i for i in api.get("/v2.1/{pid}/images/detail").json()["images"]}
    assert set(detail) == SEEDED
    ubuntu = detail[UBUNTU]
    assert ubuntu["status"] == "ACTIVE" and ubuntu["progress"] == 100
    assert ubuntu["minDisk"] == 10 and ubuntu["minRam"] == 1024
    assert ubuntu["OS-EXT-IMG-SIZE:size"] > 0
    assert ubuntu["created"].endswith("Z") and ubuntu["updated"].endswith("Z")
    meta = ubuntu["metadata"]
    assert meta["__os_type"] == "Linux" and meta["__imagetype"] == "gold" and meta["__os_bit"] == "64"
    assert meta["__support_kvm"] == "true" and meta["virtual_env_type"] == "FusionCompute"
    assert all(isinstance(v, str) for v in meta.values())
    assert detail[FEDORA_QUEUED]["status"] == "SAVING" and detail[FEDORA_QUEUED]["progress"] == 25
    r = api.get(f"/v2.1/{{pid}}/images/{UBUNTU}")
    assert r.status_code == 200 and r.json()["image"] == ubuntu
    r = api.get(f"/v2.1/{{pid}}/images/{WINDOWS}/metadata")
    assert r.status_code == 200 and r.json()["metadata"]["__os_type"] == "Windows"


@pytest.mark.parametrize("query, expected", [
    ("name=Standard_Debian_12_latest", {DEBIAN}),
    ("status=SAVING", {FEDORA_QUEUED}),
    ("status=queued", {FEDORA_QUEUED}),
    ("status=active", SEEDED - {FEDORA_QUEUED}),
    ("minDisk=40", {EULER, WINDOWS, DATA_IMAGE}),
    ("minRam=2048", {EULER, WINDOWS}),
    ("changes-since=2000-01-01T00:00:00Z", SEEDED),
    ("changes-since=2999-01-01T00:00:00Z", set()),
])
def test_nova_filters(api, query, expected):
    r = api.get(f"/v2.1/{{pid}}/images/detail?{query}")
    assert r.status_code == 200, r.text
    assert set(ids(r.json())) == expected
    assert set(ids(api.get(f"/v2.1/{{pid}}/images?{query}").json())) == expected


@pytest.mark.parametrize("query", ["minDisk=-1", "minRam=lots", "changes-since=yesterday", "limit=-3",
                                   "marker=00000000-0000-0000-0000-000000000000"])
def test_nova_bad_query_is_400(api, query):
    assert_error(api.get(f"/v2.1/{{pid}}/images/detail?{query}"), 400, "Ecs.0005")


def test_nova_paging_with_images_links(api, settings):
    everything = ids(api.get("/v2.1/{pid}/images/detail").json())
    seen: list[str] = []
    path = "/v2.1/{pid}/images/detail?limit=4"
    while path:
        body = api.get(path).json()
        seen.extend(ids(body))
        links = body.get("images_links")
        path = None
        if links:
            assert links[0]["rel"] == "next"
            path = links[0]["href"].removeprefix(settings.endpoint)
            assert path.startswith(f"/v2.1/{api.pid}/images/detail?")
    assert seen == everything


def test_nova_unknown_image_and_wrong_project(api):
    assert_error(api.get(f"/v2.1/{{pid}}/images/{uuid.uuid4()}"), 404, "Ecs.0031")
    assert_error(api.get("/v2.1/{pid}/images/nope/metadata"), 404, "Ecs.0031")
    assert_error(api.get(f"/v2.1/{OTHER_PROJECT}/images"), 400, "Ecs.0023")
    assert_error(api.get(f"/v2.1/{OTHER_PROJECT}/images/{UBUNTU}"), 400, "Ecs.0023")


def test_glance_has_its_own_root_for_discovery(api):
    r = api.get("/image", token=False)
    assert r.status_code == 300
    assert r.json()["versions"][0]["links"][0]["href"].endswith("/image/v2/")
    r = api.get(f"/image/v2/images/{DEBIAN}")
    assert r.status_code == 200 and r.json() == api.get(f"/v2/images/{DEBIAN}").json()
    page = api.get("/image/v2/images?limit=2").json()
    assert len(page["images"]) == 2 and page["next"].startswith("/v2/images?")
    assert_error(api.get(f"/image/v2/images/{uuid.uuid4()}"), 404, "Ecs.0031")
    assert_error(api.get("/image/v2/images", token=False), 401, "Common.0013")
    catalog = {e["type"]: e["endpoints"][0]["url"] for e in api.client.post(
        "/v3/auth/tokens", json=token_request(api.creds)).json()["token"]["catalog"]}
    assert catalog["image"].endswith("/image")
