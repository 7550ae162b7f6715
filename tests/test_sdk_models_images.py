"""Every image and flavor answer, read through the official Huawei SDK's own response models.

A real ``ecsd serve`` (``tests/sdk_server.py``) is called with the SDK clients (``ImsClient``,
``EcsClient``, AK/SK-signed), and each response object is walked against the raw JSON the server
sent with :func:`tests.sdk_models.check_response`: every field the model declares must be present
with the declared type (a ``str`` field a JSON string, ``int`` an integer, ``bool`` a boolean, ...).
The SDK's own conversion warnings are errors here.

* IMS ``list_images`` (model ``ImageInfo``): every page of the catalogue, with filters, sorting and
  paging; every field of ``ImageInfo`` is required (only ``page_info.next_marker`` may be absent,
  on the last page).
* Glance ``glance_list_images`` (``GlanceShowImageListResponseBody``) and ``glance_show_image``
  (``GlanceShowImageResponse``) for every image: every field required (``next`` only on the last page).
* ECS ``list_flavors`` (``Flavor``, ``FlavorExtraSpec``, ``FlavorLink``, ``ServerAttachableQuantity``):
  the fields of the reference's flavor table and the 17 ``os_extra_specs`` keys it documents are
  required; ``rxtx_quota``, ``rxtx_cap`` and ``links[].type`` are null by the reference; the
  extra-spec keys the SDK knows beyond the reference may be absent.
* ``nova_show_flavor_extra_specs`` (``dict(str, str)``) for every flavor, with the same 17 keys.

The SDK has no Nova flavor or Nova image calls; those views are checked over plain HTTP in
``tests/test_flavors.py`` and ``tests/test_images.py``.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("huaweicloudsdkcore", reason="the Huawei Cloud SDK is not installed: pip install -e '.[test]'")
pytest.importorskip("huaweicloudsdkecs", reason="huaweicloudsdkecs is not installed: pip install -e '.[test]'")
pytest.importorskip("huaweicloudsdkims", reason="huaweicloudsdkims is not installed: pip install -e '.[test]'")

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkecs.v2 import EcsClient, ListFlavorsRequest, NovaShowFlavorExtraSpecsRequest
from huaweicloudsdkecs.v2.model import FlavorExtraSpec
from huaweicloudsdkims.v2 import (
    GlanceListImagesRequest,
    GlanceShowImageRequest,
    ImsClient,
    ListImagesRequest,
)
from huaweicloudsdkims.v2.model import ImageInfo

from tests import support as s
from tests.sdk_models import check_response
from tests.sdk_server import ecsd_server  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(r"ignore:Method 'nova_\w+' of EcsClient is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(r"ignore:Method 'glance_\w+' of ImsClient is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("error::huaweicloudsdkcore.warning.warning.TypeConversionWarning"),
]

# Table 6 of apis_recommended/flavor_management/querying_details_about_flavors_and_extended_flavor_information.rst
# (and data_structure/data_structure_for_querying_details_about_specifications.rst).
REFERENCE_EXTRA_SPECS = (
    "ecs:performancetype", "resource_type", "instance_vnic:type", "instance_vnic:instance_bandwidth",
    "instance_vnic:max_count", "quota:local_disk", "quota:nvme_ssd", "extra_spec:io:persistent_grant",
    "ecs:generation", "ecs:virtualization_env_types", "cond:operation:status", "cond:operation:az",
    "quota:max_rate", "quota:min_rate", "quota:max_pps", "cond:operation:charge", "cond:compute",
)
FLAVOR_OPTIONAL = {
    "Flavor": {"rxtx_quota", "rxtx_cap"},          # "This parameter has not been used. Its default value is null."
    "FlavorLink": {"type"},                        # the same
    "FlavorExtraSpec": {key for key in FlavorExtraSpec.attribute_map.values() if key not in REFERENCE_EXTRA_SPECS},
}


@pytest.fixture(scope="module")
def clients(ecsd_server):  # noqa: F811
    base, creds = ecsd_server
    cfg = HttpConfig.get_default_config()
    cfg.timeout = (5, 30)
    cred = BasicCredentials(creds["ak"], creds["sk"], creds["project_id"])

    def build(cls):
        return cls.new_builder().with_http_config(cfg).with_credentials(cred).with_endpoint(base).build()

    return build(ImsClient), build(EcsClient)


def _assert_clean(resp, optional=None) -> None:
    problems = check_response(resp, optional=optional)
    assert problems == [], "\n".join(problems[:40]) + (f"\n... {len(problems)} in all" if len(problems) > 40 else "")


# --- IMS -------------------------------------------------------------------------------------------------

def _walk_ims(ims, **filters) -> list:
    """Every page of ``list_images`` with these filters (4 per page), each checked against the model."""
    images, marker = [], None
    for _ in range(100):
        resp = ims.list_images(ListImagesRequest(limit=4, marker=marker, **filters))
        _assert_clean(resp, optional={"PageInfo": {"next_marker"}})
        images.extend(resp.images)
        marker = resp.page_info.next_marker if resp.page_info else None
        if marker is None:
            return images
    raise AssertionError("paging did not end")


def test_ims_list_images_sends_every_image_info_field(clients):
    ims, _ = clients
    images = _walk_ims(ims)
    assert len(images) == 11 and len({i.id for i in images}) == 11
    for image in images:
        assert isinstance(image, ImageInfo)
        assert image.enterprise_project_id == "0" and image.image_source_type == "uds"
        assert image.image_size == str(image.size) and int(image.image_size) > 0
        assert image.virtual_size >= image.size
        assert image.system_support_market is False and image.isregistered == "true"
        assert image.active_at == (image.created_at if image.status == "active" else "")
        assert json.loads(image.os_feature_list) is not None
    by_id = {i.id: i for i in images}
    assert by_id[s.UBUNTU].support_fc_inject == "false" and by_id[s.DEBIAN].support_fc_inject == "true"


@pytest.mark.parametrize("filters", [
    {"os_type": "Linux", "platform": "Ubuntu"},
    {"imagetype": "gold", "visibility": "public", "status": "active"},
    {"support_kvm": "true", "virtual_env_type": "FusionCompute", "isregistered": "true"},
    {"sort_key": "min_disk", "sort_dir": "desc"},
    {"enterprise_project_id": "0", "protected": True},
    {"disk_format": "zvhd2", "container_format": "bare", "support_diskintensive": "false"},
])
def test_ims_list_images_with_filters_and_paging(clients, filters):
    ims, _ = clients
    images = _walk_ims(ims, **filters)
    assert images
    for key in ("os_type", "platform", "imagetype", "visibility", "status", "virtual_env_type", "disk_format"):
        if key in filters:
            assert {getattr(i, key) for i in images} == {filters[key]}


# --- Glance ----------------------------------------------------------------------------------------------

def test_glance_list_images_sends_every_field(clients):
    ims, _ = clients
    seen, marker = [], None
    for _ in range(100):
        resp = ims.glance_list_images(GlanceListImagesRequest(limit=3, marker=marker))
        _assert_clean(resp, optional={"GlanceListImagesResponse": {"next"}})
        seen.extend(resp.images)
        if not resp.next:
            break
        marker = resp.images[-1].id
    assert len(seen) == 11
    assert {i.sys_enterprise_project_id for i in seen} == {"0"}
    filtered = ims.glance_list_images(GlanceListImagesRequest(os_type="Windows", isregistered=True, limit=50))
    _assert_clean(filtered, optional={"GlanceListImagesResponse": {"next"}})
    assert [i.id for i in filtered.images] == [s.WINDOWS]


def test_glance_show_image_sends_every_field(clients):
    ims, _ = clients
    ids = [i.id for i in ims.list_images(ListImagesRequest(limit=100)).images]
    for image_id in ids:
        resp = ims.glance_show_image(GlanceShowImageRequest(image_id=image_id))
        _assert_clean(resp)
        assert resp.id == image_id and resp.is_config_init in ("true", "false")


# --- flavors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("az", [None, "eu-de-01"])
def test_list_flavors_sends_every_reference_field(clients, az):
    _, ecs = clients
    resp = ecs.list_flavors(ListFlavorsRequest(availability_zone=az))
    _assert_clean(resp, optional=FLAVOR_OPTIONAL)
    assert len(resp.flavors) == 7
    raw = {f["id"]: f for f in json.loads(resp.raw_content)["flavors"]}
    for flavor in resp.flavors:
        specs = raw[flavor.id]["os_extra_specs"]
        assert set(REFERENCE_EXTRA_SPECS) <= set(specs), set(REFERENCE_EXTRA_SPECS) - set(specs)
        assert all(isinstance(v, str) for v in specs.values())
        extra = flavor.os_extra_specs
        assert int(extra.instance_vnicmax_count) <= 4 and int(extra.instance_vnicinstance_bandwidth) <= 10000
        assert int(extra.quotamin_rate) <= int(extra.quotamax_rate)
        assert extra.condoperationcharge == "demand"
        assert flavor.attachable_quantity.free_nic == int(extra.instance_vnicmax_count)


def test_nova_show_flavor_extra_specs_has_every_reference_key(clients):
    _, ecs = clients
    for flavor in ecs.list_flavors(ListFlavorsRequest()).flavors:
        resp = ecs.nova_show_flavor_extra_specs(NovaShowFlavorExtraSpecsRequest(flavor_id=flavor.id))
        _assert_clean(resp)
        assert set(REFERENCE_EXTRA_SPECS) <= set(resp.extra_specs)
        assert resp.extra_specs["ecs:generation"] == flavor.id.split(".")[0]
