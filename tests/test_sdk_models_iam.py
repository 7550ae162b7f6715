"""Every IAM answer ecsd gives, read through the official Huawei IAM SDK's own response models.

``IamClient`` (AK/SK-signed, as the SDK always signs IAM calls) against a real ``ecsd serve``; each
response is walked against the raw JSON with :func:`tests.sdk_models.check_response`. Fields the IAM
models declare that do not apply are listed in ``OPTIONAL`` with the reason; everything else must be
there with the declared type.
"""

from __future__ import annotations

import pytest

pytest.importorskip("huaweicloudsdkcore", reason="the Huawei Cloud SDK is not installed: pip install -e '.[test]'")
pytest.importorskip("huaweicloudsdkiam", reason="huaweicloudsdkiam is not installed: pip install -e '.[test]'")

from huaweicloudsdkcore.auth.credentials import BasicCredentials, GlobalCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkiam.v3 import (
    IamClient,
    KeystoneCreateUserTokenByPasswordRequest,
    KeystoneCreateUserTokenByPasswordRequestBody,
    KeystoneListAuthDomainsRequest,
    KeystoneListAuthProjectsRequest,
    KeystoneListProjectsRequest,
    KeystoneShowProjectRequest,
)
from huaweicloudsdkiam.v3.model import (
    AuthScope,
    AuthScopeProject,
    PwdAuth,
    PwdIdentity,
    PwdPassword,
    PwdPasswordUser,
    PwdPasswordUserDomain,
)

from tests.sdk_models import check_response
from tests.sdk_server import ecsd_server  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("error::huaweicloudsdkcore.warning.warning.TypeConversionWarning"),
]

OPTIONAL = {
    # A project-scoped token names its project; ``domain`` is only in a domain-scoped one.
    "TokenResult": {"domain"},
    # Keystone's paging links: null when there is no other page; a project's own links only have self.
    "Links": {"previous", "next"},
}


@pytest.fixture(scope="module")
def iam(ecsd_server):  # noqa: F811
    base, creds = ecsd_server
    cfg = HttpConfig.get_default_config()
    cfg.timeout = (5, 30)
    client = (IamClient.new_builder().with_http_config(cfg).with_endpoint(base)
              .with_credentials(GlobalCredentials(creds["ak"], creds["sk"])).build())
    scoped = (IamClient.new_builder().with_http_config(cfg).with_endpoint(base)
              .with_credentials(BasicCredentials(creds["ak"], creds["sk"], creds["project_id"])).build())
    return client, scoped, creds


def _clean(resp, optional=None) -> None:
    problems = check_response(resp, optional={**OPTIONAL, **(optional or {})})
    assert problems == [], "\n".join(problems[:40]) + (f"\n... {len(problems)} in all" if len(problems) > 40 else "")


def test_password_token(iam):
    client, _, creds = iam
    user = PwdPasswordUser(domain=PwdPasswordUserDomain(name=creds["domain_name"]), name=creds["user_name"],
                           password=creds["password"])
    auth = PwdAuth(identity=PwdIdentity(methods=["password"], password=PwdPassword(user=user)),
                   scope=AuthScope(project=AuthScopeProject(name=creds["project_name"])))
    resp = client.keystone_create_user_token_by_password(KeystoneCreateUserTokenByPasswordRequest(
        body=KeystoneCreateUserTokenByPasswordRequestBody(auth=auth)))
    _clean(resp)
    assert resp.token.project.id == creds["project_id"] and resp.x_subject_token


def test_projects_and_domains(iam):
    client, scoped, creds = iam
    listed = client.keystone_list_projects(KeystoneListProjectsRequest())
    _clean(listed)
    assert creds["project_id"] in [p.id for p in listed.projects]
    _clean(client.keystone_list_auth_projects(KeystoneListAuthProjectsRequest()))
    _clean(scoped.keystone_show_project(KeystoneShowProjectRequest(project_id=creds["project_id"])))
    _clean(client.keystone_list_auth_domains(KeystoneListAuthDomainsRequest()))
