"""The Helm chart gives S3 backups AWS credentials without keys: IRSA on the ServiceAccount.

On EKS a role is bound to the pod by annotating its ServiceAccount; EKS then sets
AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE in the pod, and the bot's AWS SDK client reads
them (tests/unit/test_backup_s3.py shows a backup going up with such credentials). helm is
built as for tests/integration/test_deploy.py.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.helm import CHART, Helm, documents, only

pytestmark = pytest.mark.kube

ROLE_ARN = "eks.amazonaws.com/role-arn"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.build(tmp_path_factory.mktemp("helm"))


def _documented_example() -> dict[str, str]:
    """The commented IRSA example under `serviceAccount` in values.yaml, uncommented."""
    text = (CHART / "values.yaml").read_text()
    found = re.search(r"^  # annotations:\n((?:  #   .*\n)+)", text, re.MULTILINE)
    assert found, "values.yaml shows no commented serviceAccount.annotations example"
    example = "".join(line.replace("#", "", 1) for line in found.group(1).splitlines(True))
    annotations: dict[str, str] = yaml.safe_load(example)
    return annotations


def test_service_account_annotations_render_the_irsa_role(helm: Helm) -> None:
    example = _documented_example()
    assert example[ROLE_ARN].startswith("arn:aws:iam::")
    objects = documents(helm.template({"serviceAccount": {"annotations": example}}))
    account = only(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == example
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    output = helm.lint({"serviceAccount": {"annotations": example}}, name="irsa")
    assert "[WARNING]" not in output and "[ERROR]" not in output, output


def test_no_annotations_by_default(helm: Helm) -> None:
    account = only(documents(helm.template()), "ServiceAccount")
    assert "annotations" not in account["metadata"]
